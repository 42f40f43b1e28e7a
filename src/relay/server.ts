/**
 * The relay's socket adapter: one UDP socket carries media and RTCP for publishers and viewers.
 * All routing decisions are RelayCore's; this file only moves bytes and runs the timer.
 */
import dgram from 'node:dgram';
import { RelayCore, type Endpoint, type Output, type RelayCoreOptions } from './core.ts';
import { FanoutSender, loadNative, type SendPath } from './fanout-send.ts';

export interface RelayServerOptions extends RelayCoreOptions {
  host: string;
  port: number;
  log?: (line: string) => void;
  now?: () => number;
  /** Fan out with the native sendmmsg helper when it is built (default true); false: dgram only. */
  sendmmsg?: boolean;
}

const TICK_MS = 500;
/** Catch-up pacing granularity: at 20 Mbit/s a 4 ms step is 10 KB, a few datagrams. */
const PUMP_MS = 4;
/** Kernel buffers: a burst of a keyframe to many viewers must not overflow them. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

export class RelayServer {
  readonly core: RelayCore;
  private readonly socket: dgram.Socket;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private readonly now: () => number;
  private readonly sender: FanoutSender;

  private constructor(socket: dgram.Socket, now: () => number, opts: RelayCoreOptions, sendmmsg: boolean) {
    this.socket = socket;
    this.now = now;
    this.core = new RelayCore(now(), opts);
    this.sender = new FanoutSender(socket, (to) => this.core.sendFailed(to), sendmmsg ? loadNative() : { why: '--no-sendmmsg' });
  }

  static async start(opts: RelayServerOptions): Promise<RelayServer> {
    const type = opts.host.includes(':') ? 'udp6' : 'udp4';
    const socket = dgram.createSocket({ type, reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(opts.port, opts.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    // Made after bind: the native sender needs the socket's descriptor, which exists from bind on.
    const server = new RelayServer(socket, opts.now ?? Date.now, { key: opts.key, watchKey: opts.watchKey }, opts.sendmmsg ?? true);
    server.core.onLog = opts.log;
    try {
      socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
      socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
    } catch {
      // The kernel may cap buffer sizes (net.core.rmem_max); the defaults still work.
    }
    // A send error on one datagram (ICMP unreachable from a viewer that left) must not end the relay.
    socket.on('error', (err) => opts.log?.(`relay socket: ${err.message}`));
    socket.on('message', (msg, rinfo) => {
      server.send(server.core.onDatagram(msg, { address: rinfo.address, port: rinfo.port }, server.now()));
      if (server.core.pumping) server.schedulePump();
    });
    server.timer = setInterval(() => server.send(server.core.tick(server.now())), TICK_MS);
    server.timer.unref();
    return server;
  }

  get address(): Endpoint {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  private pumpTimer?: NodeJS.Timeout;

  /** Paces joining viewers' catch-up: a pump every PUMP_MS while any is in progress. */
  private schedulePump(): void {
    if (this.pumpTimer || this.closed) return;
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = undefined;
      if (this.closed) return;
      this.send(this.core.pump(this.now()));
      if (this.core.pumping) this.schedulePump();
    }, PUMP_MS);
  }

  /** How datagrams leave: 'sendmmsg' (native, batched) or 'dgram', and why when it is dgram. */
  get sendPath(): { path: SendPath; why?: string; handedToDgram: number } {
    return { path: this.sender.path, why: this.sender.why, handedToDgram: this.sender.handedToDgram };
  }

  private send(outputs: Output[]): void {
    // After close the descriptor number may already belong to another socket of this process.
    if (this.closed) return;
    for (const o of outputs) this.sender.send(o.data, o.to);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.pumpTimer);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

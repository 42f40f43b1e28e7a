/**
 * The relay's socket adapter: one UDP socket carries media and RTCP for publishers and viewers.
 * All routing decisions are RelayCore's; this file only moves bytes and runs the timer.
 */
import dgram from 'node:dgram';
import { RelayCore, type Endpoint, type Output, type RelayCoreOptions } from './core.ts';

export interface RelayServerOptions extends RelayCoreOptions {
  host: string;
  port: number;
  log?: (line: string) => void;
  now?: () => number;
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

  private constructor(socket: dgram.Socket, now: () => number, opts: RelayCoreOptions) {
    this.socket = socket;
    this.now = now;
    this.core = new RelayCore(now(), opts);
  }

  static async start(opts: RelayServerOptions): Promise<RelayServer> {
    const type = opts.host.includes(':') ? 'udp6' : 'udp4';
    const socket = dgram.createSocket({ type, reuseAddr: false });
    const server = new RelayServer(socket, opts.now ?? Date.now, { key: opts.key, watchKey: opts.watchKey });
    server.core.onLog = opts.log;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(opts.port, opts.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
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

  /**
   * One send callback per destination, made once: the fan-out loop calls send for every viewer
   * of every packet, and a fresh closure per call was measurable garbage (npm run bench, fanout).
   */
  private readonly sentTo = new WeakMap<Endpoint, (err: Error | null) => void>();

  private callbackFor(to: Endpoint): (err: Error | null) => void {
    let cb = this.sentTo.get(to);
    if (!cb) {
      cb = (err) => {
        if (err) this.core.sendFailed(to);
      };
      this.sentTo.set(to, cb);
    }
    return cb;
  }

  private send(outputs: Output[]): void {
    for (const o of outputs) {
      for (const to of o.to) this.socket.send(o.data, to.port, to.address, this.callbackFor(to));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.pumpTimer);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

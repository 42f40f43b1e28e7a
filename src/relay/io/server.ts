/**
 * The relay's socket adapter: one UDP socket carries media and RTCP for publishers and viewers.
 * All routing decisions are RelayCore's; this file only moves bytes and runs the timer.
 */
import dgram from 'node:dgram';
import { RelayCore, type Output, type RelayCoreOptions } from '../core.ts';
import { widenBuffers, type Endpoint } from '../../util/net.ts';
import { FanoutSender, type IoPath } from './fanout-send.ts';
import { receiveDatagrams, type Receiver } from './batch-receive.ts';
import { loadNative, type Loaded } from './native.ts';
import { MAX_DATAGRAM } from '../../defaults.ts';
import { getSystemErrorName } from 'node:util';

export interface RelayServerOptions extends RelayCoreOptions {
  host: string;
  port: number;
  log?: (line: string) => void;
  now?: () => number;
  /** Datagrams in and out through the native helper when it is built (default true); false: dgram only. */
  native?: boolean;
}

const TICK_MS = 500;
/** Catch-up pacing granularity: at 20 Mbit/s a 4 ms step is 10 KB, a few datagrams. */
const PUMP_MS = 4;

export class RelayServer {
  readonly core: RelayCore;
  private readonly socket: dgram.Socket;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private readonly now: () => number;
  private readonly sender: FanoutSender;
  private receiver?: Receiver;

  private constructor(socket: dgram.Socket, now: () => number, opts: RelayCoreOptions, helper: Loaded) {
    this.socket = socket;
    this.now = now;
    this.core = new RelayCore(now(), opts);
    this.sender = new FanoutSender(socket, (to) => this.core.sendFailed(to), helper);
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
    // Made after bind: the native helper needs the socket's descriptor, which exists from bind on.
    const helper: Loaded = opts.native === false ? { why: '--no-native' } : loadNative();
    const server = new RelayServer(socket, opts.now ?? Date.now, { key: opts.key, watchKey: opts.watchKey }, helper);
    server.core.onLog = opts.log;
    widenBuffers(socket); // a keyframe's burst to many viewers
    // A send error on one datagram (ICMP unreachable from a viewer that left) must not end the relay.
    socket.on('error', (err) => opts.log?.(`relay socket: ${err.message}`));
    const onDatagram = (msg: Buffer, from: Endpoint) => {
      server.send(server.core.onDatagram(msg, from, server.now()));
      if (server.core.pumping) server.schedulePump();
    };
    // Batches through the helper when the sends use it too (--no-native turns off both).
    // A lasting receive error would repeat at the loop's pace: one line a second, with the count.
    let errors = 0;
    let lastLog = -Infinity;
    const native = server.sender.path === 'native' ? helper.native : undefined;
    server.receiver = receiveDatagrams(socket, native, MAX_DATAGRAM, onDatagram, (errno, fellBack) => {
      errors++;
      const now = Date.now();
      if (!fellBack && now - lastLog < 1000) return;
      lastLog = now;
      opts.log?.(
        `relay socket: receive failed (${getSystemErrorName(-errno)}${errors > 1 ? `, ${errors} so far` : ''})` +
          (fellBack ? '; reading through node:dgram from now on' : ''),
      );
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
   * How datagrams move: 'native' (the helper: batches in and out) or 'dgram', and why when it is
   * dgram. With 'native', receiving may still be dgram's if the helper could not take it over.
   */
  get io(): { path: IoPath; batchReceive: boolean; why?: string; handedToDgram: number } {
    return { path: this.sender.path, batchReceive: this.receiver?.batched ?? false, why: this.sender.why, handedToDgram: this.sender.handedToDgram };
  }

  /** Datagrams another transport's viewers caused (RTCP for the sharer), out through this socket; and their catch-up paced. */
  sendFromTransport(outputs: Output[]): void {
    this.send(outputs);
    if (this.core.pumping) this.schedulePump();
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
    this.receiver?.stop(); // before the socket: the helper reads a dup of its descriptor
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

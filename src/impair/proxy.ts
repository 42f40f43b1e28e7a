/**
 * `udpcast impair`'s socket adapter: a UDP proxy between clients and one target that applies
 * ImpairCore's decisions in both directions. Every decision is the core's; this file only moves
 * bytes, keeps the client table and runs one timer for the delay line.
 *
 *   client A ──┐                 ┌── upstream socket A ──┐
 *   client B ──┼─► listen socket ┼── upstream socket B ──┼─► target
 *              │      (PORT)     └── …                  ─┘
 *              └◄──── replies go back through the socket that carried the client's datagrams
 *
 * Each client address gets its own upstream socket, so the target sees one source port per client
 * and its replies find their way back (a small NAT): at most maxClients, dropped after idleMs without
 * traffic either way.
 *
 * A direction with a --rate schedule starts it when the proxy starts and logs one line per step,
 * `impair: up rate now 1 Mbit/s (2026-12-01T02:03:04.567Z)`, the first for the start itself, so a
 * benchmark can read off when each step happened. A fixed rate logs nothing.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { performance } from 'node:perf_hooks';
import { formatEndpoint, widenBuffers, type HostPort } from '../util/net.ts';
import {
  ClientTable,
  ImpairCore,
  MinHeap,
  deriveSeed,
  formatRate,
  type CoreCounters,
  type DropReason,
  type ImpairSettings,
} from './core.ts';

/** Clients one proxy serves at once; a new client past it is refused and counted. */
export const MAX_CLIENTS = 1024;
/** A client with no datagram either way for this long loses its upstream socket (a NAT's UDP
 *  mapping timeout is typically 30-120 s; RFC 4787 REQ-5 asks for at least 2 minutes, but a rehearsal
 *  proxy can be quicker since our viewers refresh every KEEPALIVE_MS). */
export const CLIENT_IDLE_MS = 60_000;

export type Direction = 'up' | 'down';

export interface Counters extends CoreCounters {
  /** Scheduled copies never sent because the proxy closed or the client expired first. */
  cancelled: number;
  /** Sends the kernel refused. */
  sendErrors: number;
}

export interface NatCounters {
  clients: number;
  /** Datagrams from new clients while the table was full. */
  refused: number;
  expired: number;
}

export interface ImpairProxyOptions {
  listenPort: number;
  /** Default '0.0.0.0' (udp6 when it contains ':'). */
  listenHost?: string;
  target: HostPort;
  up: ImpairSettings;
  down: ImpairSettings;
  seed: number;
  /** A datagram was scheduled: it leaves at sendAtMs (performance.now() clock), `copies` times. */
  onForward?: (dir: Direction, datagram: Buffer, sendAtMs: number, copies: number) => void;
  onDrop?: (dir: Direction, datagram: Buffer, reason: DropReason | 'refused') => void;
  log?: (line: string) => void;
  maxClients?: number;
  idleMs?: number;
}

interface Client {
  key: string;
  address: string;
  port: number;
  socket: dgram.Socket;
  closed: boolean;
}

interface Scheduled {
  at: number;
  seq: number;
  dir: Direction;
  data: Buffer;
  copies: number;
  client: Client;
}

/** Label of the down direction's seed stream; up uses the seed as given. */
const SEED_DOWN = 0xd0;

export class ImpairProxy {
  readonly target: HostPort;
  private readonly cores: Record<Direction, ImpairCore>;
  private readonly extra: Record<Direction, { cancelled: number; sendErrors: number }> = {
    up: { cancelled: 0, sendErrors: 0 },
    down: { cancelled: 0, sendErrors: 0 },
  };
  private readonly nat = { refused: 0, expired: 0 };
  private readonly table: ClientTable<Client>;
  private readonly line = new MinHeap<Scheduled>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq));
  private seq = 0;
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private sweeper?: NodeJS.Timeout;
  /** Per direction with a --rate schedule: the timer for its next step. */
  private readonly rateTimers: Partial<Record<Direction, NodeJS.Timeout>> = {};
  private closed = false;
  private closing?: Promise<void>;
  private readonly now = () => performance.now();

  private constructor(
    private readonly listen: dgram.Socket,
    private readonly upstreamType: 'udp4' | 'udp6',
    target: HostPort,
    private readonly opts: ImpairProxyOptions,
  ) {
    this.target = target;
    // A --rate schedule's first step starts now, both directions together (the bind that follows
    // takes well under a millisecond).
    const start = this.now();
    this.cores = { up: new ImpairCore(opts.up, opts.seed, start), down: new ImpairCore(opts.down, deriveSeed(opts.seed, SEED_DOWN), start) };
    this.table = new ClientTable(opts.maxClients ?? MAX_CLIENTS, opts.idleMs ?? CLIENT_IDLE_MS);
  }

  static async start(opts: ImpairProxyOptions): Promise<ImpairProxy> {
    // Resolve the target once: every upstream socket sends to the same address, and replies are
    // matched against it.
    const resolved = await lookup(opts.target.host);
    const target = { host: resolved.address, port: opts.target.port };
    const host = opts.listenHost ?? '0.0.0.0';
    const listen = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
    const proxy = new ImpairProxy(listen, resolved.family === 6 ? 'udp6' : 'udp4', target, opts);
    await new Promise<void>((resolve, reject) => {
      listen.once('error', (err) => {
        listen.close(); // a failed bind must not leave a handle keeping the process alive
        reject(err);
      });
      listen.bind(opts.listenPort, host, () => {
        listen.removeAllListeners('error');
        resolve();
      });
    });
    widenBuffers(listen);
    // One failed send (ICMP unreachable from a client that left) must not end the proxy.
    listen.on('error', (err) => opts.log?.(`impair listen socket: ${err.message}`));
    listen.on('message', (msg, rinfo) => proxy.fromClient(msg, rinfo));
    const idle = proxy.table.idleMs;
    proxy.sweeper = setInterval(() => proxy.sweep(), Math.max(10, Math.min(idle / 2, 5000)));
    proxy.sweeper.unref();
    for (const dir of ['up', 'down'] as const) {
      const core = proxy.cores[dir];
      if ((core.rateAt(core.startMs)?.untilMs ?? Infinity) === Infinity) continue; // no schedule
      // From a timer, so the caller's own start lines (the settings) come first; the line still
      // carries the time of the start.
      proxy.armRate(dir, 0, () => proxy.announceRate(dir, core.startMs, undefined));
    }
    return proxy;
  }

  /** The port the proxy listens on (useful after listenPort 0). */
  get port(): number {
    return this.listen.address().port;
  }

  get address(): { address: string; port: number } {
    const a = this.listen.address();
    return { address: a.address, port: a.port };
  }

  get counters(): { up: Counters; down: Counters } {
    return {
      up: { ...this.cores.up.counters, ...this.extra.up },
      down: { ...this.cores.down.counters, ...this.extra.down },
    };
  }

  get natCounters(): NatCounters {
    return { clients: this.table.size, ...this.nat };
  }

  /** Datagrams scheduled and not yet sent, both directions. */
  get pending(): number {
    return this.line.size;
  }

  /** One line per direction. */
  summary(): string {
    const c = this.counters;
    const one = (dir: Direction, label: string, k: Counters) =>
      `${dir.padEnd(4)} ${label}: received ${k.received}, forwarded ${k.forwarded} (+${k.duplicated} duplicates, ${k.reordered} reordered), ` +
      `lost ${k.lost} random + ${k.lostBurst} burst, rate-dropped ${k.rateDropped}, overflow ${k.overflow}, ` +
      `${formatBytes(k.bytes)} out` +
      (k.cancelled || k.sendErrors ? `, ${k.cancelled} cancelled, ${k.sendErrors} send errors` : '');
    const n = this.natCounters;
    return [
      one('up', 'client → target', c.up),
      one('down', 'target → client', c.down) + (n.refused || n.expired ? `; clients: ${n.refused} refused, ${n.expired} expired` : ''),
    ].join('\n');
  }

  private fromClient(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    const now = this.now();
    const key = `${rinfo.address}|${rinfo.port}`;
    let client = this.table.touch(key, now);
    if (!client) {
      if (this.table.size >= this.table.maxClients) this.sweep(); // make room if anyone is idle
      if (this.table.size >= this.table.maxClients) {
        this.nat.refused++;
        this.opts.onDrop?.('up', msg, 'refused');
        return;
      }
      const socket = dgram.createSocket(this.upstreamType);
      const fresh: Client = { key, address: rinfo.address, port: rinfo.port, socket, closed: false };
      this.table.add(key, fresh, now);
      client = fresh;
      // Bound to an ephemeral port on first use; replies from anyone but the target are ignored.
      socket.bind(0);
      socket.on('listening', () => widenBuffers(socket));
      socket.on('error', (err) => this.opts.log?.(`impair upstream socket for ${formatEndpoint(fresh)}: ${err.message}`));
      socket.on('message', (reply, from) => {
        if (from.address !== this.target.host || from.port !== this.target.port) return;
        this.fromTarget(fresh, reply);
      });
    }
    this.handle('up', client, msg, now);
  }

  private fromTarget(client: Client, msg: Buffer): void {
    if (this.closed || client.closed) return;
    const now = this.now();
    this.table.touch(client.key, now);
    this.handle('down', client, msg, now);
  }

  private handle(dir: Direction, client: Client, msg: Buffer, now: number): void {
    const d = this.cores[dir].decide(msg.length, now);
    if (d.kind === 'drop') {
      this.opts.onDrop?.(dir, msg, d.reason);
      return;
    }
    this.opts.onForward?.(dir, msg, d.sendAt, d.copies);
    this.line.push({ at: d.sendAt, seq: this.seq++, dir, data: msg, copies: d.copies, client });
    this.flush();
  }

  /** Sends everything due, in send-time order, and arms the timer for the next one. */
  private flush(): void {
    if (this.closed) return;
    const now = this.now();
    for (let head = this.line.peek(); head && head.at <= now; head = this.line.peek()) {
      this.line.pop();
      this.send(head);
    }
    const next = this.line.peek();
    if (!next) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Infinity;
    } else if (next.at < this.timerAt) {
      clearTimeout(this.timer);
      this.timerAt = next.at;
      // Timers fire on whole milliseconds and can be a fraction early against performance.now():
      // round up, and a datagram found not yet due is simply left for the next round.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.flush();
      }, Math.max(1, Math.ceil(next.at - now)));
    }
  }

  private send(s: Scheduled): void {
    const extra = this.extra[s.dir];
    if (s.client.closed) {
      extra.cancelled += s.copies;
      return;
    }
    const onSent = (err: Error | null) => {
      if (err) extra.sendErrors++;
    };
    for (let i = 0; i < s.copies; i++) {
      if (s.dir === 'up') s.client.socket.send(s.data, this.target.port, this.target.host, onSent);
      else this.listen.send(s.data, s.client.port, s.client.address, onSent);
    }
  }

  /**
   * Logs the rate `dir` has from the step starting at `stepMs` (when it differs from `lastBps`), then
   * waits for the next step. A timer held back past whole steps (a blocked event loop) logs each of
   * them on catching up, each with its own time; one that fires a fraction early (timers round to
   * whole milliseconds) logs its step all the same, with the step's time.
   */
  private announceRate(dir: Direction, stepMs: number, lastBps: number | undefined): void {
    if (this.closed) return;
    const core = this.cores[dir];
    const now = this.now();
    for (;;) {
      const r = core.rateAt(stepMs)!;
      if (r.rateBps !== lastBps) this.opts.log?.(`impair: ${dir} rate now ${formatRate(r.rateBps)} (${wallClock(stepMs, now)})`);
      lastBps = r.rateBps;
      stepMs = r.untilMs;
      if (stepMs > now) break;
    }
    const next = stepMs;
    const last = lastBps;
    this.armRate(dir, Math.ceil(next - now), () => this.announceRate(dir, next, last));
  }

  /** The step timer of `dir`; unref'd, as the sockets are what keep the proxy alive. */
  private armRate(dir: Direction, ms: number, fire: () => void): void {
    const t = setTimeout(fire, ms);
    t.unref();
    this.rateTimers[dir] = t;
  }

  private sweep(): void {
    for (const c of this.table.expire(this.now())) {
      this.nat.expired++;
      this.opts.log?.(`impair: client ${formatEndpoint(c)} idle for ${Math.round(this.table.idleMs / 1000)} s, forgotten`);
      closeClient(c)?.close();
    }
  }

  /** Stops forwarding, drops what is still scheduled (counted as cancelled) and closes every socket. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.sweeper);
    clearTimeout(this.rateTimers.up);
    clearTimeout(this.rateTimers.down);
    for (let s = this.line.pop(); s; s = this.line.pop()) this.extra[s.dir].cancelled += s.copies;
    const sockets = [this.listen, ...this.table.clear().map((c) => closeClient(c))].filter((s): s is dgram.Socket => !!s);
    this.closing = Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined);
    return this.closing;
  }
}

/** Marks a client closed and hands back its socket for the caller to close (or closes it). */
function closeClient(c: Client): dgram.Socket | undefined {
  if (c.closed) return undefined;
  c.closed = true;
  return c.socket;
}

/**
 * The wall-clock time (ISO 8601, from Date) of `atMs` on the performance.now() clock, read at
 * `nowMs`: the core runs on the monotonic clock, while a benchmark lines the step up with other
 * programs' wall-clock logs. Date now, less how long ago `atMs` was, so a timer that fires late
 * does not shift the time printed.
 */
function wallClock(atMs: number, nowMs: number): string {
  return new Date(Date.now() - (nowMs - atMs)).toISOString();
}

function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

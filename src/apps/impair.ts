/**
 * `udpcast impair`: its options from the command line, and a handle that runs the proxy
 * (src/impair/proxy.ts) until stopped, then prints what it did.
 */
import { randomInt } from 'node:crypto';
import { ImpairProxy } from '../impair/proxy.ts';
import {
  DEFAULT_QUEUE_PACKETS,
  MAX_RATE_EVERY_MS,
  MIN_RATE_EVERY_MS,
  describeSettings,
  impairSettings,
  type ImpairSettings,
} from '../impair/core.ts';
import { UsageError } from '../util/errors.ts';
import { formatEndpoint, type HostPort } from '../util/net.ts';
import { checkDuration, checkPort, parseHostPort } from './options.ts';

export interface ImpairOptions {
  listenHost: string;
  listenPort: number;
  target: HostPort;
  up: ImpairSettings;
  down: ImpairSettings;
  seed: number;
  /** True when the seed was drawn at random (the start line then says how to repeat the run). */
  seedChosen: boolean;
  duration?: number;
}

/** An explicit port: "host:5004", "[::1]:5004" (a bare IPv6 address would hide a missing port). */
const HOST_COLON_PORT = /^(\[[^\]]+\]|[^:\s]+):\d+$/;

/** Largest --seed: the PRNG state is 32 bits. */
export const MAX_SEED = 0xffffffff;

/**
 * `udpcast impair --help`: each impairment NAME and its description. Each also exists as
 * --up-NAME and --down-NAME (hidden in the help), which override NAME for one direction.
 */
export const IMPAIRMENT_HELP: readonly (readonly [string, string])[] = [
  ['loss', 'datagrams lost at random, e.g. 5%'],
  ['burst', 'a loss takes LEN datagrams in a row (mean loss stays --loss)'],
  ['delay', 'added one-way delay, e.g. 10ms'],
  ['jitter', 'random extra delay 0..J, order kept, e.g. 20ms'],
  ['reorder', 'datagrams held back past later ones, e.g. 1%'],
  ['reorder-gap', 'how long a reordered datagram is held back (default 20ms)'],
  ['duplicate', 'datagrams sent twice, e.g. 1%'],
  ['rate', 'bandwidth limit, e.g. 10M (bit/s); a list such as 4M,1M is a schedule (--rate-every)'],
  ['rate-every', `how long each rate of a --rate list holds, cycling from the start, e.g. 15s (${MIN_RATE_EVERY_MS}ms-${MAX_RATE_EVERY_MS / 1000}s)`],
  ['queue', `what may wait for the rate limit: datagrams (default ${DEFAULT_QUEUE_PACKETS}) or a time, e.g. 100ms`],
];

/**
 * Options of `udpcast impair` from yargs' camelCase arguments: listen ("PORT" binds every
 * interface, "HOST:PORT" one), to (HOST:PORT), seed, duration, and the impairments (see
 * impairSettings in core.ts for the up-/down- scheme).
 */
export function impairOptions(a: Record<string, unknown>): ImpairOptions {
  if (a.listen === undefined) throw new UsageError('--listen is required: the UDP port clients send to, PORT or HOST:PORT');
  if (a.to === undefined) throw new UsageError('--to is required: where datagrams go, HOST:PORT');
  const l = String(a.listen).trim();
  let listen: HostPort;
  if (/^\d+$/.test(l)) listen = { host: '0.0.0.0', port: checkPort('listen', l, true) };
  else if (HOST_COLON_PORT.test(l)) {
    const i = l.lastIndexOf(':'); // split here so HOST:0 (any free port) is allowed like a bare 0
    listen = { host: parseHostPort('listen', l.slice(0, i)).host, port: checkPort('listen', l.slice(i + 1), true) };
  }
  else throw new UsageError(`--listen must be PORT or HOST:PORT ([v6]:PORT), got ${l}`);
  const t = String(a.to).trim();
  if (!HOST_COLON_PORT.test(t)) throw new UsageError(`--to must be HOST:PORT ([v6]:PORT), got ${t}`);
  const target = parseHostPort('to', t);
  const seedChosen = a.seed === undefined;
  const seed = seedChosen ? randomInt(MAX_SEED + 1) : parseSeed(a.seed);
  return { listenHost: listen.host, listenPort: listen.port, target, ...impairSettings(a), seed, seedChosen, duration: checkDuration('duration', a.duration) };
}

function parseSeed(v: unknown): number {
  const s = String(v).trim();
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n > MAX_SEED) throw new UsageError(`--seed must be a whole number 0-${MAX_SEED}, got ${s}`);
  return n;
}

export interface ImpairHandle {
  proxy: ImpairProxy;
  done: Promise<number>;
  stop(code?: number): void;
}

/** Runs the proxy until stop() (or --duration), then prints the summary, one line per direction. */
export async function startImpair(o: ImpairOptions, log: (line: string) => void): Promise<ImpairHandle> {
  let proxy: ImpairProxy;
  try {
    proxy = await ImpairProxy.start({ listenHost: o.listenHost, listenPort: o.listenPort, target: o.target, up: o.up, down: o.down, seed: o.seed, log });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new UsageError(`--listen port ${o.listenPort} is in use on ${o.listenHost}: pick another port`);
    if (e.code === 'EADDRNOTAVAIL') throw new UsageError(`--listen host ${o.listenHost} is not an address of this machine`);
    if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') throw new UsageError(`--to host ${o.target.host} does not resolve`);
    throw err;
  }
  log(
    `impair: ${formatEndpoint(proxy.address)} → ${formatEndpoint({ address: proxy.target.host, port: proxy.target.port })}, seed ${o.seed}` +
      (o.seedChosen ? ` (repeat this run with --seed ${o.seed})` : ''),
  );
  log(`impair: up   (client → target): ${describeSettings(o.up)}`);
  log(`impair: down (target → client): ${describeSettings(o.down)}`);
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const timer = o.duration ? setTimeout(() => stop(0), o.duration * 1000) : undefined;
  let stopping = false;
  function stop(code = 0): void {
    if (stopping) return;
    stopping = true;
    clearTimeout(timer);
    proxy.close().then(() => {
      for (const line of proxy.summary().split('\n')) log(`impair: ${line}`);
      finish(code);
    });
  }
  return { proxy, done, stop };
}

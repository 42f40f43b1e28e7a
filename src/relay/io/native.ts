/**
 * The relay's optional native helper (native/mmsg.c): datagrams in with recvmmsg(2) and out with
 * sendmmsg(2), a batch per system call, where node:dgram makes one system call and one JS call per
 * datagram. It is built at install time by native/build.mjs on Linux when a C compiler and Node's
 * own headers are present; without it the relay runs on node:dgram alone and says why.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type dgram from 'node:dgram';

/** A running receiver, for stopReceiving. */
export type NativeReceiver = object & { readonly __nativeReceiver?: never };

/** The helper's exports (native/mmsg.c has the contract of each). */
export interface NativeHelper {
  /** A sockaddr_in / sockaddr_in6 for `sendToMany`; throws TypeError for anything else. */
  packAddress(ip: string, port: number): Buffer;
  /** Sends `data` to addresses[start..]: how many went (> 0), or -errno when the first failed. */
  sendToMany(fd: number, data: Buffer | readonly Buffer[], addresses: readonly Buffer[], start: number): number;
  /**
   * Sends datagrams[start..] (each a Buffer or its pieces) to one address, in order: how many went
   * (> 0), or -errno when the first failed. Absent from a build older than it (the caller then
   * sends one at a time).
   */
  sendEach?(fd: number, datagrams: ReadonlyArray<Buffer | readonly Buffer[]>, address: Buffer, start: number): number;
  /** Reads the socket in batches: datagram i is data[ends[i-1] .. ends[i]) from addresses[i]:ports[i]. */
  startReceiving(
    fd: number,
    slotBytes: number,
    onBatch: (data: Buffer, ends: number[], addresses: string[], ports: number[]) => void,
    /** `stopped`: the receiver gave up (its descriptor is gone or cannot be polled): read another way. */
    onError: (errno: number, stopped: boolean) => void,
  ): NativeReceiver;
  /** Idempotent; before the socket is closed. */
  stopReceiving(receiver: NativeReceiver): void;
}

export type Loaded = { native: NativeHelper; why?: undefined } | { native?: undefined; why: string };

/** Where the build puts the helper, from this file in src/relay/io (tsx) or dist/src/relay/io (tsc). */
const CANDIDATES = ['../../../native/build/mmsg.node', '../../../../native/build/mmsg.node'];
const EXPORTS = ['packAddress', 'sendToMany', 'startReceiving', 'stopReceiving'] as const;

let loaded: Loaded | undefined;

/** Loads the helper once, or says in a few words why the relay will use node:dgram instead. */
export function loadNative(): Loaded {
  return (loaded ??= load());
}

function load(): Loaded {
  if (process.platform !== 'linux') return { why: `sendmmsg(2) and recvmmsg(2) are Linux only (this is ${process.platform})` };
  const path = CANDIDATES.map((c) => new URL(c, import.meta.url)).find((u) => existsSync(u));
  if (!path) return { why: 'the native helper is not built; npm run build:native builds it' };
  try {
    const native = createRequire(import.meta.url)(path.pathname) as NativeHelper;
    const gone = EXPORTS.filter((k) => typeof native[k] !== 'function');
    if (gone.length) return { why: `${path.pathname} is an older build without ${gone.join(', ')}; npm run build:native` };
    return { native };
  } catch (err) {
    return { why: `the native helper did not load: ${(err as Error).message.split('\n')[0]}` };
  }
}

type Handle = { fd?: unknown; recvStop?: () => number; recvStart?: () => number };

/**
 * Node's UDP handle behind a dgram socket. Node has no public accessor for the descriptor; the handle
 * has had an `fd` property on Unix for many majors, behind the socket's internal state symbol.
 * Undefined when that changes, and the relay then uses dgram alone.
 */
function handleOf(socket: dgram.Socket): Handle | undefined {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  return state && (socket as unknown as Record<symbol, { handle?: Handle }>)[state]?.handle;
}

/**
 * A reader of the socket's descriptor as it is now, for a caller that asks per packet: node's
 * handle found once (its look-up is a symbol search, 0.6 µs), its `fd` read each time (it turns
 * negative when the socket closes).
 */
export function fdReader(socket: dgram.Socket): (() => number | undefined) | undefined {
  const h = handleOf(socket);
  if (!h) return undefined;
  return () => openFd(h.fd);
}

/** The OS descriptor of a bound dgram socket, or undefined. */
export function socketFd(socket: dgram.Socket): number | undefined {
  return openFd(handleOf(socket)?.fd);
}

/** A handle's `fd` when it names an open descriptor (it is negative once the socket closed). */
function openFd(fd: unknown): number | undefined {
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/** Stops node's own reading of the socket (its 'message' events), so another reader can take over. */
export function stopDgramReading(socket: dgram.Socket): boolean {
  const h = handleOf(socket);
  if (typeof h?.recvStop !== 'function' || typeof h.recvStart !== 'function') return false;
  h.recvStop();
  return true;
}

/** Starts node's own reading again, after stopDgramReading. */
export function startDgramReading(socket: dgram.Socket): void {
  handleOf(socket)?.recvStart?.();
}

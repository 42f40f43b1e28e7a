/**
 * How the relay puts one datagram on the wire for many viewers.
 *
 * - `dgram`: one `socket.send` per viewer. Portable; libuv queues a datagram the kernel will not
 *   take yet. Its cost is per call: several times what the kernel itself spends per packet
 *   (BENCHMARKS.md, relay fan-out).
 * - `native`: the helper's sendToMany (native.ts): one sendmmsg(2) per batch of up to 1024 viewers,
 *   all pointing at the same bytes. It never queues, so this class hands dgram whatever the kernel
 *   pushes back (EAGAIN, ENOBUFS), every datagram while dgram still holds sends it was handed (so
 *   order is kept), and destination lists with an address it cannot pack (an IPv6 zone: %eth0).
 *
 * Either way, one viewer's failed send is counted through `onFail` and the others still get theirs.
 */
import { constants } from 'node:os';
import type dgram from 'node:dgram';
import type { Endpoint } from '../../util/net.ts';
import { socketFd, type NativeHelper } from './native.ts';

export type IoPath = 'native' | 'dgram';

/** What the sender needs of the helper. */
export type NativeSend = Pick<NativeHelper, 'packAddress' | 'sendToMany'>;

const { EAGAIN, ENOBUFS } = constants.errno;

export class FanoutSender {
  /** Why `path` is dgram, when it is. */
  readonly why?: string;
  /**
   * Datagrams the native path left to dgram's queue: the kernel's send buffer was full, or earlier
   * ones it left there were still waiting.
   */
  handedToDgram = 0;

  /** Both set, or neither (dgram). */
  private readonly fd?: number;
  private readonly native?: NativeSend;
  /** Datagrams handed to dgram whose send callback has not run yet. */
  private inDgram = 0;
  /** Packed address per viewer; null when it cannot be packed (that viewer always goes by dgram). */
  private readonly packed = new WeakMap<Endpoint, Buffer | null>();
  /**
   * Packed addresses per destination list. RelayCore never mutates an `Output.to` it returned
   * (stream.targets is replaced, not edited), so a list seen again is the same viewers.
   */
  private readonly lists = new WeakMap<readonly Endpoint[], Buffer[] | null>();
  /** One dgram callback per destination, made once: a closure per send was measurable garbage. */
  private readonly callbacks = new WeakMap<Endpoint, (err: Error | null) => void>();

  constructor(
    private readonly socket: dgram.Socket,
    private readonly onFail: (to: Endpoint) => void,
    /** The native helper (undefined, with `why`, selects dgram); `fd` overrides the socket's, for tests. */
    native: { native?: NativeSend; why?: string; fd?: number },
  ) {
    const fd = native.native ? (native.fd ?? socketFd(socket)) : undefined;
    if (native.native && fd !== undefined) {
      this.native = native.native;
      this.fd = fd;
    } else {
      this.why = native.why ?? "this Node does not expose the socket's descriptor";
    }
  }

  get path(): IoPath {
    return this.native ? 'native' : 'dgram';
  }

  send(data: Buffer, to: readonly Endpoint[]): void {
    if (!this.native) {
      this.sendByDgram(data, to, 0);
      return;
    }
    if (this.inDgram > 0) {
      // Datagrams handed to dgram earlier have not left yet (dgram sends from the next tick, after
      // an address lookup, then from libuv's queue): these go behind them, so order is kept.
      this.handedToDgram += to.length;
      this.sendByDgram(data, to, 0);
      return;
    }
    const addresses = this.addressesOf(to);
    if (!addresses) {
      this.sendByDgram(data, to, 0);
      return;
    }
    let i = 0;
    while (i < to.length) {
      const r = this.native!.sendToMany(this.fd!, data, addresses, i);
      if (r > 0) {
        i += r;
      } else if (-r === EAGAIN || -r === ENOBUFS) {
        // The kernel is full right now: libuv waits for it to drain, so nothing accepted is lost.
        this.handedToDgram += to.length - i;
        this.sendByDgram(data, to, i);
        return;
      } else {
        this.onFail(to[i]);
        i++;
      }
    }
  }

  private addressesOf(to: readonly Endpoint[]): Buffer[] | null {
    // A single destination (an ACK, a retransmission, a catch-up packet) comes in a new list each
    // time: caching it would only fill the WeakMap.
    if (to.length === 1) {
      const a = this.addressOf(to[0]);
      return a && [a];
    }
    let list = this.lists.get(to);
    if (list === undefined) {
      list = [];
      for (const e of to) {
        const a = this.addressOf(e);
        if (!a) {
          list = null;
          break;
        }
        list.push(a);
      }
      this.lists.set(to, list);
    }
    return list;
  }

  private addressOf(e: Endpoint): Buffer | null {
    let a = this.packed.get(e);
    if (a === undefined) {
      try {
        a = this.native!.packAddress(e.address, e.port);
      } catch {
        a = null;
      }
      this.packed.set(e, a);
    }
    return a;
  }

  private sendByDgram(data: Buffer, to: readonly Endpoint[], from: number): void {
    this.inDgram += to.length - from;
    for (let i = from; i < to.length; i++) this.socket.send(data, to[i].port, to[i].address, this.callbackFor(to[i]));
  }

  private callbackFor(to: Endpoint): (err: Error | null) => void {
    let cb = this.callbacks.get(to);
    if (!cb) {
      cb = (err) => {
        this.inDgram--;
        if (err) this.onFail(to);
      };
      this.callbacks.set(to, cb);
    }
    return cb;
  }
}

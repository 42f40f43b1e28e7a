/**
 * Packet indices and replay protection, after RFC 3711 §3.3.1 (index estimation) and §3.3.2
 * (replay list as a sliding window).
 *
 * An RTP packet's index is the 48-bit number ROC · 2^16 + SEQ, where ROC counts how often the
 * sender's 16-bit sequence number wrapped. It is exact in a JavaScript number (< 2^53).
 */
import { SEQ_MOD, seqDiff } from '../../rtp/seq.ts';

/**
 * Packets the replay window remembers behind the highest one (RFC 3711 §3.3.2 asks for ≥ 64). As
 * many as the sharer keeps to send again (UPLINK_HISTORY_PACKETS): a copy of a packet that never
 * arrived comes up to that far behind (after the rest of a keyframe, at a few Mbit/s) and must
 * still be told from a replay. 128 bytes of bitmap per SSRC.
 */
export const REPLAY_WINDOW = 1024;
/** RFC 3711 §3.3.1: the ROC is 32 bits, so the index is 48. */
export const MAX_INDEX = 2 ** 48 - 1;
/** SSRCs one tracker table follows (media, FEC, RTCP of one publisher, with room for restarts). */
export const MAX_TRACKED_SSRCS = 16;

/**
 * RFC 3711 §3.3.1: the index of a packet with sequence number `seq`, guessed from the highest
 * index seen so far: the one nearest to it, so a packet up to 32767 ahead or 32768 behind lands in
 * the right ROC (seq.ts's convention: exactly half-way counts as behind). Negative when the packet
 * would be from before index 0; callers treat that as invalid.
 */
export function estimateIndex(highest: number, seq: number): number {
  return highest + seqDiff(highest % SEQ_MOD, seq);
}

/** The ROC part of an index. */
export function rocOf(index: number): number {
  return Math.floor(index / SEQ_MOD);
}

/** One SSRC's highest index, for estimating the next (RFC 3711 §3.3.1's s_l and ROC). */
export class IndexTracker {
  private highest = -1;

  /** The estimated index of `seq`; the first packet seen is taken to be in ROC `initialRoc`. */
  estimate(seq: number, initialRoc = 0): number {
    return this.highest < 0 ? initialRoc * SEQ_MOD + seq : estimateIndex(this.highest, seq);
  }

  /** Records an index that passed authentication (RFC 3711 §3.3.1: only then update s_l and ROC). */
  commit(index: number): void {
    if (index > this.highest) this.highest = index;
  }

  get roc(): number {
    return this.highest < 0 ? 0 : rocOf(this.highest);
  }
}

/**
 * RFC 3711 §3.3.2 replay list: the highest accepted index and a bitmap of the REPLAY_WINDOW
 * indices up to it. `check` says whether an index may be new (before the tag is checked, no state
 * change); `accept` records it (only after the tag verified, so forgeries cannot move the window).
 */
export class ReplayWindow {
  private top = -1;
  /** Bit (i mod REPLAY_WINDOW) is set when index i in (top - REPLAY_WINDOW, top] was accepted. */
  private readonly bits = new Uint32Array(REPLAY_WINDOW / 32);

  check(index: number): boolean {
    if (!Number.isInteger(index) || index < 0 || index > MAX_INDEX) return false;
    if (index > this.top) return true;
    if (this.top - index >= REPLAY_WINDOW) return false; // too old to tell: RFC 3711 drops it
    return !this.has(index);
  }

  accept(index: number): void {
    if (index > this.top) {
      const advance = index - this.top;
      if (this.top < 0 || advance >= REPLAY_WINDOW) this.bits.fill(0);
      else for (let i = this.top + 1; i <= index; i++) this.clear(i);
      this.top = index;
    }
    const b = index % REPLAY_WINDOW;
    this.bits[b >>> 5] |= 1 << (b & 31);
  }

  /** Highest accepted index, -1 before the first. */
  get highest(): number {
    return this.top;
  }

  private has(index: number): boolean {
    const b = index % REPLAY_WINDOW;
    return (this.bits[b >>> 5] & (1 << (b & 31))) !== 0;
  }

  private clear(index: number): void {
    const b = index % REPLAY_WINDOW;
    this.bits[b >>> 5] &= ~(1 << (b & 31));
  }
}

/**
 * A bounded map from a key (an SSRC, or kind + SSRC) to per-source state; past MAX_TRACKED_SSRCS
 * the source least recently added is forgotten. Only authenticated packets add sources, so only
 * a key holder can make it churn.
 */
export class BoundedTable<K, V> {
  private readonly map = new Map<K, V>();
  constructor(
    private readonly create: () => V,
    private readonly max = MAX_TRACKED_SSRCS,
  ) {}

  peek(key: K): V | undefined {
    return this.map.get(key);
  }

  get(key: K): V {
    let v = this.map.get(key);
    if (v === undefined) {
      if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as K);
      v = this.create();
      this.map.set(key, v);
    }
    return v;
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * Retransmission history and the NACK responder (RFC 4585 §6.2.1 Generic NACK; the shape of pion's
 * nack send_buffer + responder_interceptor). The relay repairs a viewer's loss itself, from the
 * packets it has just forwarded, so one viewer's bad link costs the sharer and the other viewers
 * nothing; each viewer's budget keeps a NACK flood from turning the relay into an amplifier.
 */
import { RTX_BURST, RTX_HISTORY_PACKETS, RTX_MAX_PER_SECOND, RTX_SHARE } from '../defaults.ts';
import { rtpSequence } from '../rtp/packet.ts';
import { TokenBucket } from '../util/token-bucket.ts';

/** Recent media packets of one stream, by sequence number modulo RTX_HISTORY_PACKETS. */
export class RtxHistory {
  private packets: (Buffer | undefined)[] = new Array(RTX_HISTORY_PACKETS);

  /** Keeps a media packet (the received buffer, not a copy). Per media packet: no allocation. */
  store(buf: Buffer): void {
    this.packets[rtpSequence(buf) % RTX_HISTORY_PACKETS] = buf;
  }

  /** The packet with sequence number `seq`, unless a newer one has taken its slot. */
  get(seq: number): Buffer | undefined {
    const buf = this.packets[seq % RTX_HISTORY_PACKETS];
    return buf && rtpSequence(buf) === seq ? buf : undefined;
  }

  /** A new publisher session: nothing of the old one may be retransmitted. */
  clear(): void {
    this.packets = new Array(RTX_HISTORY_PACKETS);
  }
}

/**
 * A viewer's retransmission budget: RTX_SHARE of the datagrams the stream sent it since it last
 * asked (at most RTX_BURST in hand), and never more than RTX_MAX_PER_SECOND. The share is counted
 * from the stream's fan-out counter when a NACK comes, so forwarding media costs nothing here.
 */
export class RtxBudget {
  private credit = RTX_BURST;
  private readonly perSecond: TokenBucket;

  constructor(
    /** stream.fanOuts when the viewer joined. */
    private fanOutsSeen: number,
    now: number,
  ) {
    this.perSecond = new TokenBucket(RTX_MAX_PER_SECOND, RTX_MAX_PER_SECOND, now);
  }

  /** The viewer now counts on another fan-out counter (another quality layer's), at `fanOuts`. */
  rebase(fanOuts: number): void {
    this.fanOutsSeen = fanOuts;
  }

  /** One retransmission, if the budget has it; `fanOuts` is its layer's datagrams sent so far. */
  take(fanOuts: number, now: number): boolean {
    this.credit = Math.min(RTX_BURST, this.credit + Math.max(0, fanOuts - this.fanOutsSeen) * RTX_SHARE);
    this.fanOutsSeen = fanOuts;
    if (this.credit < 1 || !this.perSecond.take(now)) return false;
    this.credit -= 1;
    return true;
  }
}

/**
 * Answers one NACK: the packets to re-send, in the order asked, and how many it could not (no
 * longer in history, or over the viewer's budget; a packet not held costs no budget).
 */
export function answerNack(
  history: RtxHistory,
  lost: readonly number[],
  budget: RtxBudget,
  fanOuts: number,
  now: number,
): { resend: Buffer[]; misses: number } {
  const resend: Buffer[] = [];
  let misses = 0;
  for (const seq of lost) {
    const buf = history.get(seq);
    if (buf && budget.take(fanOuts, now)) resend.push(buf);
    else misses++;
  }
  return { resend, misses };
}

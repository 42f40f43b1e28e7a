/**
 * Uplink repair, the sharer's half: the media packets it sent lately, exactly as they left
 * (encrypted and signed: a copy of a packet that never arrived passes the relay's replay window
 * like the original would), by source and sequence number, to send again when the relay's NACK
 * (RFC 4585 §6.2.1) says they never arrived. At most RTX_SHARE of what is sent goes again (with
 * RTX_BURST in hand for a burst), so a path that loses much is not sent much more (RFC 8085 §3.1).
 */
import { RTX_BURST, RTX_SHARE, UPLINK_HISTORY_PACKETS } from '../defaults.ts';

/** Something sent, named by the SSRC and sequence number in its clear RTP header. */
export interface Sent {
  id?: { ssrc: number; seq: number };
}

export class SentHistory<T extends Sent> {
  /** Per source, by sequence number modulo UPLINK_HISTORY_PACKETS. */
  private readonly rings = new Map<number, (T | undefined)[]>();
  private credit = RTX_BURST;

  /** `sources`: the SSRCs kept (each layer's, the sound's); others (FEC, probes) are not. */
  constructor(sources: readonly number[]) {
    for (const s of sources) this.rings.set(s, new Array(UPLINK_HISTORY_PACKETS));
  }

  /** A media packet left (not a copy sent again): kept, and it earns RTX_SHARE of a re-send. */
  keep(item: T): void {
    const ring = item.id && this.rings.get(item.id.ssrc);
    if (!ring) return;
    ring[item.id!.seq % UPLINK_HISTORY_PACKETS] = item;
    this.credit = Math.min(RTX_BURST, this.credit + RTX_SHARE);
  }

  /** The packet to send again, if it is still kept and the share allows one more. */
  take(ssrc: number, seq: number): T | undefined {
    const item = this.rings.get(ssrc)?.[seq % UPLINK_HISTORY_PACKETS];
    if (!item || item.id!.seq !== seq || this.credit < 1) return undefined;
    this.credit -= 1;
    return item;
  }
}

/**
 * The viewer's RTCP feedback to the sharer (RFC 4585): generic NACK for packets to send again
 * (§6.2.1) and PLI for a keyframe (§6.3.1), with the keyframe-request policy: at most one PLI per
 * PLI_MIN_INTERVAL_MS, whoever asks (a loss in the pipeline, or a player restarted with nothing to
 * start from), and none before there is a sharer to ask. Apart from the pipeline so the rate limit
 * is one piece of state shared by both askers.
 */
import { serializeRtcp } from '../transport/rtcp.ts';

/** Keyframe requests at most this often (RFC 4585 leaves the rate to the application). */
export const PLI_MIN_INTERVAL_MS = 300;

export class Feedback {
  /** Sequence numbers asked for again. */
  nacksSent = 0;
  keyframeRequests = 0;
  private lastPli = -Infinity;

  /** `ssrc`: the viewer's own, as the sender of the feedback. */
  constructor(private readonly ssrc: number) {}

  /** RFC 4585 §6.2.1 packs 17 sequence numbers per FCI; a long burst becomes several FCIs. */
  nack(mediaSsrc: number, lost: number[]): Buffer {
    this.nacksSent += lost.length;
    return serializeRtcp([
      { type: 'rr', ssrc: this.ssrc, reports: [] },
      { type: 'nack', senderSsrc: this.ssrc, mediaSsrc, lost },
    ]);
  }

  /**
   * A PLI asking the sharer for a keyframe, or undefined when one was asked for less than
   * PLI_MIN_INTERVAL_MS ago or there is no sharer yet.
   */
  keyframe(mediaSsrc: number | undefined, now: number): Buffer | undefined {
    if (mediaSsrc === undefined || now - this.lastPli < PLI_MIN_INTERVAL_MS) return undefined;
    this.lastPli = now;
    this.keyframeRequests++;
    return serializeRtcp([
      { type: 'rr', ssrc: this.ssrc, reports: [] },
      { type: 'pli', senderSsrc: this.ssrc, mediaSsrc },
    ]);
  }
}

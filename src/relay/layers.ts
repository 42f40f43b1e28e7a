/**
 * Which quality layer one viewer is sent (issue 14, item 3), from that viewer's own RFC 8888
 * feedback read by the same controller the sharer runs on its uplink (transport/congestion.ts),
 * and a browser's own estimate of its path (REMB, below). A pure object: the relay (core.ts)
 * feeds it the viewer's reports and moves the viewer.
 *
 * - Down at once: over-use (a queue, or heavy loss) moves the viewer to the best layer below its
 *   own whose rate fits LAYER_FIT × the new estimate, else the lowest.
 * - Up only after room has lasted: no queue and no loss for LAYER_UP_AFTER_MS, and not within
 *   LAYER_UP_BACKOFF_MS of a move down. When the estimate says the higher layer fits with room
 *   (LAYER_UP_FIT), that is all.
 *   When it does not (it cannot grow much past what the viewer's layer uses), the move is a probe,
 *   made only every LAYER_PROBE_MS: the controller forgets its limit, and if the higher layer does
 *   not fit, the queue it causes brings the viewer back down within a report or two. A probe
 *   undone within LAYER_FAILED_UP_MS doubles that wait (up to LAYER_PROBE_MAX_MS), so a link
 *   that cannot carry the layer is probed ever more rarely. (LiveKit's hysteresis, without its
 *   padding probes.)
 * - A receiver's own estimate (REMB, draft-alvestrand-rmcat-remb: a browser that does not send
 *   transport-wide feedback sends it) caps the choice: a layer above LAYER_FIT × it moves the viewer
 *   down at once; a move up needs room under it as under the controller's estimate (LAYER_UP_FIT,
 *   LAYER_UP_AFTER_MS, LAYER_UP_BACKOFF_MS; no probe past it). With both, the lower estimate wins:
 *   while transport-wide feedback comes, it alone moves the viewer up, so a REMB never lifts a
 *   viewer its queue holds down. A cap older than LAYER_ESTIMATE_MS is forgotten.
 * Every move happens at a keyframe of the target layer, so the viewer's picture never breaks: a
 * move down from that layer's keyframe cache at once when the path takes it quickly (core.ts
 * CACHE_SWITCH_MS), else, like a move up, at its next keyframe (routing.moveLater), which the
 * relay asks the sharer for.
 */
import { CongestionController, describeDecrease, type SendLog } from '../transport/congestion.ts';

/** A layer fits when its rate is at most this share of the estimate (headers and repairs take the rest)... */
export const LAYER_FIT = 0.85;
/** ...and a higher layer is moved up to, unprobed, only with this much headroom (hysteresis). */
export const LAYER_UP_FIT = 0.7;
/** Room must last this long before a move up. */
export const LAYER_UP_AFTER_MS = 3_000;
/** No move up sooner than this after a move down. */
export const LAYER_UP_BACKOFF_MS = 5_000;
/** A move up the estimate does not support (a probe) at most this often; doubled by each failed one. */
export const LAYER_PROBE_MS = 20_000;
export const LAYER_PROBE_MAX_MS = 160_000;
/** A move down this soon after a move up means the move up failed. */
export const LAYER_FAILED_UP_MS = 10_000;
/**
 * A receiver's estimate (REMB) caps the choice this long after it came, and while transport-wide
 * feedback came this recently, that feedback decides moves up. libwebrtc repeats its REMB in
 * each RTCP report (about every second for a picture); a viewer that stops sending either is no
 * longer held by it.
 */
export const LAYER_ESTIMATE_MS = 5_000;
/** The controller's ceiling: no limit known until the viewer's path shows one. */
const NO_LIMIT_KBPS = 1_000_000;

/** What the relay knows of a lane when choosing. */
export interface LaneView {
  index: number;
  kbps: number;
  /** Media arrived on it lately (the sharer may pause a layer). */
  live: boolean;
}

export interface LayerMove {
  to: number;
  why: string;
}

export class LayerChoice {
  readonly cc: CongestionController;
  /** Why the viewer's layer last changed (for the dashboard and --stats-json). */
  why?: string;
  /** Moves made. */
  moves = 0;
  private roomSince?: number;
  private upAt = 0;
  private probeAt = 0;
  private probeMs = LAYER_PROBE_MS;
  private lastProbeAt = -Infinity;
  /** The viewer's own estimate of its path (REMB, kbit/s) and when it came: a cap on the choice. */
  private receiverKbps = Infinity;
  private receiverAt = -Infinity;
  /** Since when the receiver's estimate has had room for the layer above the viewer's. */
  private estimateRoomSince?: number;
  /** When the viewer's transport-wide feedback last came. */
  private feedbackAt = -Infinity;

  constructor(sent: SendLog) {
    this.cc = new CongestionController(NO_LIMIT_KBPS, NO_LIMIT_KBPS, sent);
  }

  /**
   * Reads one report from the viewer, which is on lane `current` since `liveSince`; returns where
   * it should move, if anywhere. `lanes`: every lane of the stream, best first.
   */
  onFeedback(fb: Parameters<CongestionController['onFeedback']>[0], now: number, current: number, liveSince: number, lanes: readonly LaneView[]): LayerMove | undefined {
    const before = this.cc.decreases;
    this.feedbackAt = now;
    const estimate = Math.min(this.cc.onFeedback(fb, now, liveSince), this.receiverCap(now));
    if (this.cc.decreases !== before) {
      this.roomSince = undefined;
      // A decrease the viewer's own layer still fits: heavy random loss on a wide path (radio),
      // which a smaller picture would not lessen. NACKs repair it; the viewer stays. (A layer whose
      // rate is not measured yet, 0, says nothing.)
      const here = lanes.find((l) => l.index === current);
      if (here?.live && here.kbps > 0 && here.kbps <= estimate * LAYER_FIT) return undefined;
      const to = fittingBelow(lanes, current, estimate);
      if (to === undefined) return undefined;
      return this.down(to, now, `down: ${describeDecrease(this.cc.lastDecrease!)}, the path takes about ${Math.round(estimate)} kbit/s`);
    }
    if (this.cc.state !== 'room') {
      this.roomSince = undefined;
      return undefined;
    }
    this.roomSince ??= now;
    const up = nextUp(lanes, current);
    if (!up || now < this.upAt || now - this.roomSince < LAYER_UP_AFTER_MS) return undefined;
    const fits = up.kbps <= estimate * LAYER_UP_FIT;
    // No probe past the receiver's own estimate: it would move the viewer back down at once.
    if (!fits && (now < this.probeAt || up.kbps > this.receiverCap(now) * LAYER_FIT)) return undefined;
    this.roomSince = undefined;
    if (fits) return this.move(up.index, `up: no queue or loss for ${LAYER_UP_AFTER_MS / 1000} s, the path takes about ${Math.round(estimate)} kbit/s`);
    this.lastProbeAt = now;
    this.cc.forgetLimit();
    return this.move(up.index, `up to try: no queue or loss for ${LAYER_UP_AFTER_MS / 1000} s`);
  }

  /**
   * Reads the viewer's own estimate of its path (`kbps`, a browser's REMB: what it can receive,
   * sound included), which caps its layer; returns where it should move, if anywhere.
   */
  onEstimate(kbps: number, now: number, current: number, lanes: readonly LaneView[]): LayerMove | undefined {
    this.receiverKbps = kbps;
    this.receiverAt = now;
    const here = lanes.find((l) => l.index === current);
    if (here?.live && here.kbps > kbps * LAYER_FIT) {
      this.estimateRoomSince = undefined;
      // Where to: by the lower of this and the controller's estimate.
      const to = fittingBelow(lanes, current, this.estimateKbps(now));
      return to === undefined ? undefined : this.down(to, now, `down: the viewer estimates its path at ${Math.round(kbps)} kbit/s`);
    }
    // Up by this estimate only while no transport-wide feedback comes: when it does, onFeedback
    // moves up, under this cap.
    const up = nextUp(lanes, current);
    if (!up || now - this.feedbackAt < LAYER_ESTIMATE_MS || up.kbps > kbps * LAYER_UP_FIT) {
      this.estimateRoomSince = undefined;
      return undefined;
    }
    this.estimateRoomSince ??= now;
    if (now < this.upAt || now - this.estimateRoomSince < LAYER_UP_AFTER_MS) return undefined;
    this.estimateRoomSince = undefined;
    return this.move(up.index, `up: the viewer's estimate of its path has had room for it for ${LAYER_UP_AFTER_MS / 1000} s, now ${Math.round(kbps)} kbit/s`);
  }

  /** What the viewer's path takes as known now (kbit/s): the lower of the controller's estimate and the receiver's own. */
  estimateKbps(now: number): number {
    return Math.min(this.cc.estimateKbps, this.receiverCap(now));
  }

  /**
   * What the viewer's path is known to take (kbit/s), for the dashboard and --stats-json:
   * undefined until its feedback has shown a limit or it has sent its own estimate lately.
   */
  knownKbps(now: number): number | undefined {
    const measured = this.cc.reports > 0 && this.cc.decreases > 0 ? this.cc.estimateKbps : Infinity;
    const known = Math.min(measured, this.receiverCap(now));
    return Number.isFinite(known) ? known : undefined;
  }

  /** The viewer's lane stopped (the sharer paused it): the best live lane below, if any. */
  laneStopped(current: number, lanes: readonly LaneView[]): LayerMove | undefined {
    const to = lanes.find((l) => l.live && l.index > current) ?? lanes.filter((l) => l.live).at(-1);
    return to && to.index !== current ? this.move(to.index, 'its layer stopped at the sharer') : undefined;
  }

  /** The viewer's layer paused at the sharer, and layer `to` starts a keyframe: it moves there. */
  paused(to: number): LayerMove {
    return this.move(to, 'its layer paused at the sharer');
  }

  /** The receiver's own estimate while it holds (LAYER_ESTIMATE_MS), else no cap. */
  private receiverCap(now: number): number {
    return now - this.receiverAt < LAYER_ESTIMATE_MS ? this.receiverKbps : Infinity;
  }

  /** A move down: no move up for LAYER_UP_BACKOFF_MS, and a probe undone soon waits twice as long. */
  private down(to: number, now: number, why: string): LayerMove {
    if (now - this.lastProbeAt < LAYER_FAILED_UP_MS) this.probeMs = Math.min(LAYER_PROBE_MAX_MS, this.probeMs * 2);
    this.upAt = now + LAYER_UP_BACKOFF_MS;
    this.probeAt = Math.max(this.probeAt, now + this.probeMs);
    return this.move(to, why);
  }

  private move(to: number, why: string): LayerMove {
    this.why = why;
    this.moves++;
    return { to, why };
  }
}

/**
 * Where a move down from layer `current` goes: the best live layer below it whose rate fits
 * LAYER_FIT × `estimateKbps`, else the lowest live one; undefined when no live layer is below.
 */
function fittingBelow(lanes: readonly LaneView[], current: number, estimateKbps: number): number | undefined {
  const below = lanes.filter((l) => l.live && l.index > current);
  return (below.find((l) => l.kbps <= estimateKbps * LAYER_FIT) ?? below.at(-1))?.index;
}

/** The live layer just above `current` (the next better one), if any. */
function nextUp(lanes: readonly LaneView[], current: number): LaneView | undefined {
  return lanes.filter((l) => l.live && l.index < current).at(-1);
}

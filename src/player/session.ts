/**
 * The viewer's session with the relay: the control client (SUBSCRIBE as keepalive, the relay's
 * CHALLENGE, ACK, REFUSED and ENDED, LEAVE + BYE at the end; transport/control.ts) and the
 * connection state a person sees. A pure object: ViewerCore hands it the control messages and the
 * clock, and sends what it returns. Kept apart from the media pipeline because its state moves
 * on the relay's word and the clock, not on packets.
 *
 * States: connecting until the relay answers; then waiting while nobody publishes, live while
 * someone does (an ACK says so, or media arrives), reconnecting after VIEWER_STALL_MS of silence,
 * ended after ENDED or the sharer's BYE (an ACK without a sharer keeps it; media or an ACK with
 * one leaves it).
 */
import { VIEWER_STALL_MS } from '../defaults.ts';
import { ControlType, RefuseReason, controlApp, parseControl } from '../transport/control.ts';
import { serializeRtcp, type App, type ReportBlock } from '../transport/rtcp.ts';
import { watchProof } from '../transport/secure.ts';

/**
 * connecting: no answer from the relay yet; waiting: the relay answered, nobody publishes the
 * stream; live; reconnecting: a live stream went silent; ended: its sharer left (we wait for the next).
 */
export type ConnectionState = 'connecting' | 'waiting' | 'live' | 'reconnecting' | 'ended';

/** What a control message asks of the viewer besides a state change. */
export interface ControlEffect {
  /** Subscribe again at once: the relay challenged us to prove our address with its cookie. */
  resubscribe?: boolean;
  /** A round trip measured, SUBSCRIBE to the ACK that answers it (ms). */
  rttMs?: number;
  /** The stream's key salt, from an ACK. */
  salt?: Buffer;
}

export class ViewerSession {
  state: ConnectionState = 'connecting';
  /** Set when the relay refuses us: watch cannot go on (exits 2). */
  fatal?: string;
  /** New sharer sessions (a new SSRC or codec) after the first. */
  publisherRestarts = 0;
  /** The first SUBSCRIBE: where "first frame after N ms" counts from. */
  firstSubscribeAt?: number;
  /** The relay's address cookie, echoed in every SUBSCRIBE. */
  private cookie?: Buffer;
  private keepaliveSentAt?: number;
  private lastHeard = -Infinity;

  constructor(
    readonly stream: string,
    /** The viewer's SSRC, as the sender of every RTCP packet. */
    readonly ssrc: number,
    private readonly opts: { watchKey?: Buffer; log?: (line: string) => void } = {},
  ) {}

  /** Any datagram from the relay: it is not silent. */
  heard(now: number): void {
    this.lastHeard = now;
  }

  /**
   * The subscription keepalive: our receiver report (`reports`: a block for the publisher, if any)
   * and SUBSCRIBE. Also moves live → reconnecting after VIEWER_STALL_MS of silence.
   */
  subscribe(now: number, reports: ReportBlock[]): Buffer {
    if (this.state === 'live' && now - this.lastHeard > VIEWER_STALL_MS) this.state = 'reconnecting';
    this.keepaliveSentAt = now;
    this.firstSubscribeAt ??= now;
    const proof = this.opts.watchKey && this.cookie ? watchProof(this.opts.watchKey, this.cookie, Buffer.from(this.stream, 'utf8')) : undefined;
    return serializeRtcp([
      { type: 'rr', ssrc: this.ssrc, reports },
      controlApp({ kind: ControlType.Subscribe, stream: this.stream, cookie: this.cookie, proof }, this.ssrc),
    ]);
  }

  /** LEAVE + BYE, sent when watch ends. */
  goodbye(): Buffer {
    return serializeRtcp([
      { type: 'rr', ssrc: this.ssrc, reports: [] },
      { type: 'bye', ssrcs: [this.ssrc], reason: 'viewer left' },
      controlApp({ kind: ControlType.Leave, stream: this.stream }, this.ssrc),
    ]);
  }

  /** An RTCP APP packet from the relay; one not ours, or for another stream, does nothing. */
  onApp(app: App, now: number): ControlEffect {
    const msg = parseControl(app);
    if (!msg || msg.stream !== this.stream) return {};
    switch (msg.kind) {
      case ControlType.Challenge:
        // The relay wants proof that we receive at our address: echo its cookie at once.
        this.cookie = msg.cookie;
        return { resubscribe: true };
      case ControlType.Refused:
        this.fatal ??=
          msg.reason === RefuseReason.BadKey ? 'the relay refused us: it needs the right --watch-key' : `the relay refused us (reason ${msg.reason})`;
        return {};
      case ControlType.Ack: {
        const rttMs = this.keepaliveSentAt !== undefined ? now - this.keepaliveSentAt : undefined;
        this.keepaliveSentAt = undefined;
        // An ACK without a publisher keeps 'ended' (the sharer left) rather than 'waiting'.
        if (this.state !== 'live' && (msg.live || this.state !== 'ended')) this.state = msg.live ? 'live' : 'waiting';
        return { rttMs, salt: msg.salt };
      }
      case ControlType.Ended:
        this.state = 'ended';
        this.opts.log?.(`stream ${this.stream} ended by its sharer`);
        return {};
      default:
        return {};
    }
  }

  /** An RTCP BYE: the stream ended if it names the current publisher. */
  onBye(ssrcs: number[], publisherSsrc: number | undefined): void {
    if (publisherSsrc === undefined || !ssrcs.includes(publisherSsrc)) return;
    this.state = 'ended';
    this.opts.log?.(`stream ${this.stream}: sharer said goodbye`);
  }

  /** Media from the publisher arrived. */
  onMedia(): void {
    this.state = 'live';
  }

  /** The pipeline started following a publisher: the first, or a new sharer session. */
  onPublisher(ssrc: number, restart: boolean): void {
    if (!restart) return;
    this.publisherRestarts++;
    this.opts.log?.(`stream ${this.stream}: new sharer session (ssrc ${ssrc.toString(16)}), following it`);
  }
}

/**
 * The sharer's side of the wire: packetizes each captured frame, numbers it with RtpSender, sends it
 * to the relay, and keeps the session alive with RTCP (SR + SDES CNAME + PUBLISH every second).
 *
 * RTP timestamps are the capture wall clock on the 90 kHz clock plus a random offset, so SR's
 * NTP ↔ RTP pair maps every frame back to the moment it was captured (RFC 3550 §6.4.1).
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { hostname } from 'node:os';
import { KEEPALIVE_MS, RELAY_SILENT_MS, DEFAULT_PAYLOAD_LIMIT, PT_OPUS, PT_RED } from '../defaults.ts';
import { DtxGate } from '../codecs/opus/dtx.ts';
import { OPUS_RATE } from '../codecs/opus/opus.ts';
import { fitsRed, redPayload, type RedundantBlock } from '../codecs/opus/red.ts';
import type { Endpoint } from '../util/net.ts';
import { ControlType, PT_PROBE, RELAY_SSRC, RefuseReason, controlApp, parseControl } from './control.ts';
import { PacketError, unlessMalformed } from '../util/errors.ts';
import type { Payload } from '../rtp/frame.ts';
import { codec, type CodecName, type Codec } from '../codecs/registry.ts';
import type { Packetizer } from '../codecs/codec.ts';
import { FecEncoder, PT_FEC, type FecMode } from './fec.ts';
import {
  AuthSigner,
  MediaProtector,
  newStreamSalt,
  payloadLimitFor,
  streamKeys,
  type MasterKey,
} from './secure.ts';
import { startsKeyframe } from './keyframe.ts';
import { msToNtp, rttMs } from './ntp.ts';
import { isRtcp, parseRtcp, serializeRtcp, SDES_CNAME, type RtcpPacket } from './rtcp.ts';
import { RtpSender } from './sender.ts';
import { SentHistory } from './resend.ts';
import { TS_MOD, tsDiff } from '../rtp/seq.ts';
import { isRtp, rtpPayloadType, rtpSequence, rtpSsrc, rtpTimestamp } from '../rtp/packet.ts';
import { CongestionController, PROBE_MS } from './congestion.ts';
import { CircuitBreaker } from './breaker.ts';
import { PACE_FACTOR_LIMITED, PACE_FACTOR_OPEN, PACE_LIMIT_SHARE, Pacer } from './pacer.ts';

/** A probe's padding: datagrams of up to this payload (at least the least), sent in this many even slices of PROBE_MS. */
const PROBE_PAYLOAD_BYTES = 1100;
const PROBE_MIN_PAYLOAD_BYTES = 100;
const PROBE_TICKS = 6;

/** A datagram ready to leave: its chunks, size, whether it is FEC, and its RTP identity. */
interface Outgoing {
  d: Buffer[];
  bytes: number;
  fec: boolean;
  id?: { ssrc: number; seq: number };
  /** A copy sent again (a NACK's answer), not kept again. */
  again?: boolean;
}

export interface PublishableFrame {
  codec: CodecName;
  /** The quality layer (0, the top one, when there is one). */
  layer?: number;
  /** As the encoder's reader gives them: H.264's NAL units, or one JPEG (Codec.packetizer). */
  units: Buffer[];
  keyframe: boolean;
  captureUnixMs: number;
}

export interface PublisherOptions {
  relay: Endpoint;
  stream: string;
  codec: CodecName;
  payloadLimit?: number;
  /**
   * --key: sign every datagram for the relay; --encrypt: encrypt every RTP payload end to end.
   * Each is the master key of its passphrase (deriveMasterKey, run once per process).
   */
  security?: { key?: MasterKey; encrypt?: MasterKey };
  /**
   * Congestion control (congestion.ts): read the relay's RFC 8888 feedback, estimate what the path
   * takes (never above maxKbps) and pace media by it. Absent: media leaves as the encoder gives it.
   */
  congestion?: { maxKbps: number };
  /** Forward error correction: one parity packet per `groupSize` media packets (RFC 5109). */
  fec?: { groupSize: number; mode: FecMode; depth?: number };
  /** Quality layers sent (1-3): each its own SSRC, numbering and FEC, one timestamp clock. */
  layers?: number;
  /** Sound is sent too (sendAudio): Opus on its own SSRC, in the SRs beside the picture's. */
  audio?: boolean;
  /** Earlier Opus packets repeated in each sound packet (RFC 2198 RED, 0-AUDIO_RED_MAX); 0: plain Opus. */
  audioRedundancy?: number;
  /** Silence is not sent (DTX) past its first DTX_HANGOVER_MS, but for a packet each DTX_KEEPALIVE_MS. Default on. */
  audioDtx?: boolean;
  log?: (line: string) => void;
  now?: () => number;
}

export interface ViewerReport {
  ssrc: number;
  fractionLost: number;
  cumulativeLost: number;
  jitterMs: number;
  rttMs?: number;
  at: number;
}

export interface PublisherCounters {
  framesSent: number;
  keyframesSent: number;
  /** Opus packets sent (sendAudio). */
  audioPacketsSent: number;
  /** Opus packets of silence not sent (DTX, RFC 7587 §3.1.3; codecs/opus/dtx.ts). */
  audioSilenceNotSent: number;
  packetsSent: number;
  bytesSent: number;
  sendErrors: number;
  /** Keyframe requests (RTCP PLI) that came back through the relay. */
  keyframeRequests: number;
  /** Malformed datagrams received (counted and dropped). */
  malformed: number;
  /** FEC parity packets among packetsSent. */
  fecPacketsSent: number;
  /** Frames not sent while the uplink's circuit breaker held media (RFC 8083). */
  framesHeld: number;
  /** Probes of the uplink sent (congestion.ts): short clusters of padding the relay drops. */
  probes: number;
  /** Media packets sent again: the relay's NACK said they never arrived (resend.ts). */
  resent: number;
  /** Packets the relay asked for that were no longer kept, or over the share re-sent. */
  resendMisses: number;
}

/** 'connecting': no ACK yet; 'ok': the relay answers; 'not answering': it did, and has gone silent. */
export type RelayState = 'connecting' | 'ok' | 'not answering';

/**
 * Whether the relay still answers the PUBLISH we send every KEEPALIVE_MS with an ACK. Silent for
 * `silentMs` it is 'not answering' (killed, restarting, the path cut); its next ACK makes it 'ok'
 * again. Driven by `nowMs` alone, so tests need no clock.
 */
export class RelayLiveness {
  state: RelayState = 'connecting';
  /** When the relay last answered (undefined: never). */
  lastAnswerAt?: number;
  /** Times an answering relay went silent. */
  outages = 0;
  constructor(private readonly silentMs = RELAY_SILENT_MS) {}

  /** An ACK arrived. Returns how long the relay had been silent when this ends an outage. */
  answered(nowMs: number): number | undefined {
    const silent = this.state === 'not answering' ? nowMs - this.lastAnswerAt! : undefined;
    this.state = 'ok';
    this.lastAnswerAt = nowMs;
    return silent;
  }

  /** Called at each announcement: true when the relay has just gone silent. */
  check(nowMs: number): boolean {
    if (this.state !== 'ok' || nowMs - this.lastAnswerAt! < this.silentMs) return false;
    this.state = 'not answering';
    this.outages++;
    return true;
  }

  /** How long the relay has not answered, while it is 'not answering' (else 0). */
  silentFor(nowMs: number): number {
    return this.state === 'not answering' ? nowMs - this.lastAnswerAt! : 0;
  }
}

export class Publisher {
  /** The top layer's sender: its SSRC is the stream's. */
  readonly sender: RtpSender;
  /** One sender per quality layer, the top one first. */
  readonly senders: RtpSender[];
  readonly counters: PublisherCounters = {
    framesSent: 0,
    keyframesSent: 0,
    audioPacketsSent: 0,
    audioSilenceNotSent: 0,
    packetsSent: 0,
    bytesSent: 0,
    sendErrors: 0,
    keyframeRequests: 0,
    malformed: 0,
    fecPacketsSent: 0,
    framesHeld: 0,
    probes: 0,
    resent: 0,
    resendMisses: 0,
  };
  /** Latest receiver report from each viewer (relayed), by the viewer's SSRC. */
  readonly viewerReports = new Map<number, ViewerReport>();
  onKeyframeRequest?: () => void;
  /**
   * Every datagram as the relay reads it, before encryption and signing (RTP, FEC, RTCP with the
   * PUBLISH): share's --push with --relay feeds its own RelayCore with it. Never written to.
   */
  onPacket?: (packet: Buffer) => void;
  /** Whether the relay answers our PUBLISH. */
  readonly relay = new RelayLiveness();
  /**
   * The relay went silent ('not answering', `silentMs` since its last answer) or answers again
   * ('ok', after `silentMs` of silence). Not called for the first answer.
   */
  onRelayState?: (state: 'ok' | 'not answering', silentMs: number) => void;
  /**
   * The uplink's circuit breaker (RFC 8083) stopped media ('open', with why) or lets it go again
   * ('closed': a keyframe is wanted, the viewers' decoders start over).
   */
  onBreaker?: (state: 'open' | 'closed', why?: string) => void;
  /** RFC 8083 on the uplink, read each second from the relay's feedback (with congestion control). */
  readonly breaker = new CircuitBreaker();
  /** Packets the relay's feedback said arrived, so far: the breaker's sign that media gets through. */
  private ackedPackets = 0;
  /** RTP sent (media and FEC), for the breaker: the RTCP sent every second is not media. */
  private readonly rtpSent = { packets: 0, bytes: 0 };
  /** Round trip to the relay, from PUBLISH to its ACK (ms), when measured. */
  private relayRttMs?: number;
  private announcedAt?: number;
  /**
   * A feedback report was read; the estimate (kbit/s) is the sharer's to fit its encoder to.
   * `probed`: a chain of probes just measured the path (the encoder may follow without waiting).
   */
  onEstimate?: (kbps: number, probed: boolean) => void;
  /** Congestion control, when on (PublisherOptions.congestion). */
  readonly congestion?: CongestionController;
  private readonly pacer?: Pacer<Outgoing>;
  /** The probes' own SSRC and numbering: a stream the relay never forwards. */
  private readonly prober = new RtpSender({ payloadType: PT_PROBE });
  /** The sound's source (RFC 7587), when there is sound. */
  readonly audioSender?: RtpSender;
  private readonly audioTsOffset = randomBytes(4).readUInt32BE(0);
  /** The latest Opus packets sent, oldest first, for RED's copies (audioRedundancy of them). */
  private readonly audioRecent: Array<{ data: Buffer; timestamp: number }> = [];
  private readonly payloadLimit: number;
  /** The last Opus packet was silence not sent: the next one sent starts a talkspurt. */
  private audioInSilence = false;
  private readonly dtx: DtxGate;
  private probeTimer?: NodeJS.Timeout;
  /** The relay refused our PUBLISH (the stream is another sharer's, the relay is full, a bad key). */
  onRefused?: (reason: RefuseReason) => void;
  private readonly socket: dgram.Socket;
  private readonly opts: PublisherOptions;
  private readonly packetizers: Packetizer[];
  /** Layers above this index are paused (setFirstActive). */
  private firstActive = 0;
  /** Resumed layers not yet sent since: each starts at its next keyframe. */
  private readonly waitingForKey = new Set<number>();
  /** The codec's RTP clock (Hz): timestamps and the jitter viewers report are in its ticks. */
  private readonly clockRate: number;
  private readonly fecs?: FecEncoder[];
  /** What went lately, to send again when the relay says it never arrived. */
  private readonly sentHistory: SentHistory<Outgoing>;
  /** Per-run salt of the stream keys, announced in PUBLISH; undefined without --key/--encrypt. */
  readonly salt?: Buffer;
  private readonly signer?: AuthSigner;
  private readonly protector?: MediaProtector;
  /** RTP timestamp of the previous packet protected, by SSRC (layers share timestamps): a change marks a frame start (frame info). */
  private readonly lastProtectedTs = new Map<number, number>();
  private readonly tsOffset = randomBytes(4).readUInt32BE(0);
  private readonly cname = `udpcast@${hostname()}`;
  private readonly now: () => number;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private socketClosed = false;

  private constructor(socket: dgram.Socket, opts: PublisherOptions) {
    this.socket = socket;
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    const sec = opts.security;
    if (sec?.key || sec?.encrypt) this.salt = newStreamSalt();
    if (sec?.key) this.signer = new AuthSigner(streamKeys(sec.key, this.salt!).auth);
    if (sec?.encrypt) {
      // The relay cannot see inside encrypted payloads, so each packet says in a clear header
      // extension whether it starts a frame, and a keyframe, for the relay's keyframe cache.
      this.protector = new MediaProtector(streamKeys(sec.encrypt, this.salt!).media, (plain) => {
        if (rtpPayloadType(plain) === PT_FEC) return { frameStart: false, keyframeStart: false };
        const ts = rtpTimestamp(plain);
        const ssrc = rtpSsrc(plain);
        const frameStart = ts !== this.lastProtectedTs.get(ssrc);
        this.lastProtectedTs.set(ssrc, ts);
        return { frameStart, keyframeStart: frameStart && startsKeyframe(plain) };
      });
    }
    const payloadLimit = opts.payloadLimit ?? (sec ? payloadLimitFor({ auth: !!sec.key, encrypt: !!sec.encrypt }) : DEFAULT_PAYLOAD_LIMIT);
    const c: Codec = codec(opts.codec);
    this.clockRate = c.clockRate;
    const layers = opts.layers ?? 1;
    this.senders = Array.from({ length: layers }, () => new RtpSender({ payloadType: c.payloadType }));
    this.sender = this.senders[0];
    if (opts.audio) this.audioSender = new RtpSender({ payloadType: opts.audioRedundancy ? PT_RED : PT_OPUS });
    this.dtx = new DtxGate(opts.audioDtx ?? true);
    this.payloadLimit = payloadLimit;
    this.packetizers = this.senders.map(() => c.packetizer({ payloadLimit }));
    if (opts.fec) this.fecs = this.senders.map((s) => new FecEncoder({ mediaSsrc: s.ssrc, ...opts.fec! }));
    this.sentHistory = new SentHistory([...this.senders, ...(this.audioSender ? [this.audioSender] : [])].map((s) => s.ssrc));
    if (opts.congestion) {
      this.congestion = new CongestionController(opts.congestion.maxKbps, opts.congestion.maxKbps, undefined, true);
      this.pacer = new Pacer<Outgoing>(this.paceKbps(), (o) => this.sendNow(o));
    }
  }

  static async start(opts: PublisherOptions): Promise<Publisher> {
    const socket = dgram.createSocket(opts.relay.address.includes(':') ? 'udp6' : 'udp4');
    const pub = new Publisher(socket, opts);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    // ICMP port unreachable while the relay is down surfaces here; we keep announcing until it is back.
    socket.on('error', () => pub.counters.sendErrors++);
    socket.on('message', (msg) => pub.onDatagram(msg));
    pub.announce();
    pub.timer = setInterval(() => pub.announce(), KEEPALIVE_MS);
    return pub;
  }

  /** When the relay last acknowledged our PUBLISH (undefined: never). */
  get lastAckAt(): number | undefined {
    return this.relay.lastAnswerAt;
  }

  /** RTP timestamp of a capture instant: 90 kHz wall clock plus this sender's random offset. */
  rtpTimestamp(unixMs: number): number {
    return (Math.round(unixMs * (this.clockRate / 1000)) + this.tsOffset) % TS_MOD;
  }

  /** RTP timestamp of a capture instant on the sound's 48 kHz clock (RFC 7587 §4.1). */
  audioRtpTimestamp(unixMs: number): number {
    return (Math.round(unixMs * (OPUS_RATE / 1000)) + this.audioTsOffset) % TS_MOD;
  }

  /**
   * Sends one Opus packet as one RTP packet (RFC 7587 §4.2), stamped by its capture time so the
   * SRs map it to the same wall clock as the picture; with audioRedundancy, as RED (RFC 2198)
   * with copies of the packets before it that fit RED's fields and the payload limit. Through
   * the pacer like media: the sound counts in what the path is asked to carry. Not held with a
   * paused picture: sound goes on.
   */
  sendAudio(packet: { data: Buffer; captureUnixMs: number }): void {
    if (this.closed || !this.audioSender || this.breaker.open) return;
    if (this.dtx.decide(packet.data) === 'skip') {
      // DTX: the viewer fills the hole with silence as it goes (player/audio.ts).
      this.counters.audioSilenceNotSent++;
      this.audioInSilence = true;
      return;
    }
    const timestamp = this.audioRtpTimestamp(packet.captureUnixMs);
    const copies = this.opts.audioRedundancy ?? 0;
    let payload: Buffer[] = [packet.data];
    if (copies > 0) {
      let size = 1 + packet.data.length;
      const redundant: RedundantBlock[] = [];
      for (let i = this.audioRecent.length - 1; i >= 0; i--) {
        const r = { tsOffset: tsDiff(this.audioRecent[i].timestamp, timestamp), data: this.audioRecent[i].data };
        if (!fitsRed(r) || size + 4 + r.data.length > this.payloadLimit) break;
        size += 4 + r.data.length;
        redundant.unshift(r);
      }
      payload = redPayload(PT_OPUS, packet.data, redundant);
      this.audioRecent.push({ data: packet.data, timestamp });
      if (this.audioRecent.length > copies) this.audioRecent.shift();
    }
    // The marker: the first packet after silence not sent (RFC 3551 §4.1, RFC 7587 §4.1).
    for (const d of this.audioSender.frame([payload], timestamp, this.audioInSilence)) this.transmit(d);
    this.audioInSilence = false;
    this.counters.audioPacketsSent++;
  }

  /** Packetizes and sends one frame. A frame the payload format cannot carry throws PacketError. */
  send(frame: PublishableFrame): void {
    if (this.closed) return;
    const layer = frame.layer ?? 0;
    if (this.breaker.open) {
      if (layer === this.firstActive) this.counters.framesHeld++;
      return;
    }
    if (layer < this.firstActive || this.waitingForKey.has(layer)) {
      // A paused layer, or one waiting for its keyframe (resumed, or held): a P-frame alone is of no use.
      if (layer >= this.firstActive && frame.keyframe) this.waitingForKey.delete(layer);
      else {
        if (layer === this.firstActive) this.counters.framesHeld++;
        return;
      }
    }
    const payloads: Payload[] = this.packetizers[layer].packetize(frame.units);
    const datagrams = this.senders[layer].frame(payloads, this.rtpTimestamp(frame.captureUnixMs));
    const fec = this.fecs?.[layer];
    for (const d of datagrams) {
      this.transmit(d);
      if (fec) for (const f of fec.push(d)) this.transmit([f], true);
    }
    // Frames and keyframes count pictures: the best layer's that is sent.
    if (layer !== this.firstActive) return;
    this.counters.framesSent++;
    if (frame.keyframe) this.counters.keyframesSent++;
  }

  /**
   * Sends one datagram: encrypted (RTP, --encrypt), then signed (--key), as the relay expects. RTP
   * goes through the pacer when congestion control is on; RTCP never waits.
   */
  private transmit(d: Buffer[], fec = false): void {
    if (this.onPacket) this.onPacket(d.length === 1 ? d[0] : Buffer.concat(d));
    const rtp = isRtp(d[0]);
    // The relay's feedback names packets by the SSRC and number in their clear header.
    const id = rtp ? { ssrc: rtpSsrc(d[0]), seq: rtpSequence(d[0]) } : undefined;
    if (this.protector && rtp) d = this.protector.protect(d);
    const o = this.signed(d, fec, id);
    if (this.pacer && rtp) this.pacer.push(o);
    else this.sendNow(o);
  }

  /** `d` signed for the relay (--key) and measured: ready for the pacer or sendNow. */
  private signed(d: Buffer[], fec: boolean, id: Outgoing['id']): Outgoing {
    if (this.signer) d = this.signer.sign(d);
    let bytes = 0;
    for (const c of d) bytes += c.length;
    return { d, bytes, fec, id };
  }

  private sendNow(o: Outgoing): void {
    if (this.socketClosed) return;
    if (!o.again && !o.fec) this.sentHistory.keep(o);
    this.counters.packetsSent++;
    this.counters.bytesSent += o.bytes;
    if (o.fec) this.counters.fecPacketsSent++;
    if (o.id) {
      this.rtpSent.packets++;
      this.rtpSent.bytes += o.bytes;
      this.congestion?.onSent(o.id.ssrc, o.id.seq, o.bytes, this.now());
    }
    this.socket.send(o.d, this.opts.relay.port, this.opts.relay.address, (err) => {
      if (err) this.counters.sendErrors++;
    });
  }

  /**
   * Sends only layers `first` and below (the upper ones are paused: congestion control). A layer
   * that comes back starts at its next keyframe.
   */
  setFirstActive(first: number): void {
    for (let l = first; l < this.firstActive; l++) this.waitingForKey.add(l);
    for (let l = this.firstActive; l < first; l++) this.waitingForKey.delete(l);
    this.firstActive = first;
  }

  /**
   * Sends no more frames until each layer's next keyframe: the encoder is being cut to a lower
   * rate (a fresh run, which starts with one), and its frames at the old rate would only queue in
   * the pacer, seconds of them on a path that just narrowed, or be dropped there and break the
   * pictures after them. A short freeze instead of a long one.
   */
  holdForKeyframe(): void {
    for (let l = this.firstActive; l < this.senders.length; l++) this.waitingForKey.add(l);
  }

  private isOurs(ssrc: number): boolean {
    return this.senders.some((s) => s.ssrc === ssrc);
  }

  /**
   * The pacer's pace: generous until the path has shown a limit; then close to the estimate, and
   * under the rate the path was measured to deliver (PACE_LIMIT_SHARE of it, or of the estimate
   * when that is higher). A keyframe paced at or above the path's rate queues at its bottleneck,
   * and that queue reads as congestion: the encoder would be cut for its own keyframe, and the
   * next re-target's keyframe would do it again.
   */
  private paceKbps(): number {
    const cc = this.congestion!;
    const limit = cc.lastDecrease?.ackedKbps;
    if (limit === undefined) return cc.estimateKbps * PACE_FACTOR_OPEN;
    return Math.min(cc.estimateKbps * PACE_FACTOR_LIMITED, PACE_LIMIT_SHARE * Math.max(cc.estimateKbps, limit));
  }

  /**
   * Probes the uplink at `kbps` for PROBE_MS: padding on top of what media sends now (the rate
   * feedback last acknowledged), spread evenly over PROBE_TICKS. The relay notes and drops it.
   */
  private sendProbe(kbps: number, now: number): void {
    const cc = this.congestion!;
    const bytes = (Math.max(0, kbps - cc.ackedKbps) * PROBE_MS) / 8;
    // At least a datagram a slice, smaller ones when little is to be added: the probe's rate is
    // measured over its packets, and a few large ones would send far above what was asked.
    const size = Math.round(Math.min(PROBE_PAYLOAD_BYTES, Math.max(PROBE_MIN_PAYLOAD_BYTES, bytes / PROBE_TICKS)));
    let left = Math.max(PROBE_TICKS, Math.ceil(bytes / size));
    const perTick = Math.ceil(left / PROBE_TICKS);
    cc.startProbe(now, PROBE_MS);
    this.counters.probes++;
    const payload = Buffer.alloc(size);
    const tick = () => {
      this.probeTimer = undefined;
      if (this.closed || this.breaker.open) return;
      for (let i = 0; i < perTick && left > 0; i++, left--) {
        const seq = this.prober.nextSequence;
        const [d] = this.prober.frame([[payload]], 0);
        // Not through the pacer (it paces media at the estimate, which a probe is above) nor the
        // media protector (nothing in it): only signed, for a keyed relay's check.
        this.sendNow(this.signed(d, false, { ssrc: this.prober.ssrc, seq }));
      }
      if (left > 0) this.probeTimer = setTimeout(tick, PROBE_MS / PROBE_TICKS);
    };
    tick();
  }

  /** Datagrams dropped by the pacer because its queue was full (the path far narrower than the encoder). */
  get pacerDropped(): number {
    return this.pacer?.dropped ?? 0;
  }

  private rtcp(extra: RtcpPacket[]): Buffer {
    const now = this.now();
    const ntp = msToNtp(now);
    // One SR per layer (the same clock mapping: the layers share one timestamp clock), and one
    // CNAME for all of them (RFC 3550 §6.5.1: the same source).
    return serializeRtcp([
      ...this.senders.map((s): RtcpPacket => this.sr(s, ntp, this.rtpTimestamp(now))),
      // The sound's own clock mapped to the same instant: a receiver lines the two up by it (RFC 3550 §6.4.1).
      ...(this.audioSender ? [this.sr(this.audioSender, ntp, this.audioRtpTimestamp(now))] : []),
      { type: 'sdes', chunks: this.allSenders.map((s) => ({ ssrc: s.ssrc, items: [{ type: SDES_CNAME, text: this.cname }] })) },
      ...extra,
    ]);
  }

  private sr(s: RtpSender, ntp: { sec: number; frac: number }, rtpTimestamp: number): RtcpPacket {
    return { type: 'sr', ssrc: s.ssrc, ntpSec: ntp.sec, ntpFrac: ntp.frac, rtpTimestamp, packetCount: s.packetCount >>> 0, octetCount: s.octetCount >>> 0, reports: [] };
  }

  /** Every source of this sharer: the layers', then the sound's. */
  private get allSenders(): RtpSender[] {
    return this.audioSender ? [...this.senders, this.audioSender] : this.senders;
  }

  /** SR + SDES + PUBLISH: keeps the relay's latch and gives viewers the clock mapping. */
  private announce(): void {
    if (this.closed) return;
    const layers = this.senders.slice(1).map((s) => s.ssrc);
    this.transmit([this.rtcp([controlApp({ kind: ControlType.Publish, stream: this.opts.stream, salt: this.salt, ...(layers.length ? { layers } : {}) }, this.sender.ssrc)])]);
    // Media keeps going out while the relay is silent: only its answers may be what is lost, and
    // a restarted relay takes the stream back from the next PUBLISH without a restart here.
    const now = this.now();
    this.announcedAt = now;
    if (this.relay.check(now)) this.onRelayState?.('not answering', this.relay.silentFor(now));
    this.checkBreaker(now);
  }

  /**
   * Once a second: the uplink's circuit breaker reads what the relay's feedback said over the last
   * second. Armed by the first feedback (a relay that sends none is an older one, not a dead path);
   * media stops when it trips and goes again CB_RESUME_MS later if the relay answers by then (or,
   * stopped because none arrived while the relay was silent, as soon as it answers again).
   */
  private checkBreaker(now: number): void {
    const cc = this.congestion;
    if (!cc || cc.reports === 0) return;
    if (this.breaker.open) {
      if (this.breaker.mayResume(now) && this.relay.state === 'ok') this.resumeMedia();
      return;
    }
    const why = this.breaker.report({ fractionLost: cc.loss, highestSeq: this.ackedPackets, rttMs: this.relayRttMs }, this.rtpSent, now);
    if (why) {
      this.pacer?.clear(); // not into the path just found not to carry it
      this.onBreaker?.('open', why);
    }
  }

  /** Media goes again after the circuit breaker, from the next keyframe of each layer. */
  private resumeMedia(): void {
    this.breaker.resume();
    // Frames were held, not numbered: a P-frame now would refer to pictures no viewer has.
    for (let l = this.firstActive; l < this.senders.length; l++) this.waitingForKey.add(l);
    this.onBreaker?.('closed');
  }

  private onDatagram(msg: Buffer): void {
    if (!isRtcp(msg)) return;
    const packets = unlessMalformed(() => parseRtcp(msg), undefined);
    if (!packets) {
      this.counters.malformed++;
      return;
    }
    const now = this.now();
    for (const p of packets) {
      if (p.type === 'rr' || p.type === 'sr') {
        for (const b of p.reports) {
          if (!this.isOurs(b.ssrc)) continue;
          this.viewerReports.set(p.ssrc, {
            ssrc: p.ssrc,
            fractionLost: b.fractionLost / 256,
            cumulativeLost: b.cumulativeLost,
            jitterMs: (b.jitter / this.clockRate) * 1000,
            rttMs: rttMs(b, now),
            at: now,
          });
        }
      } else if (p.type === 'app') {
        let msg;
        try {
          msg = parseControl(p);
        } catch (err) {
          if (!(err instanceof PacketError)) throw err;
          this.counters.malformed++;
          continue;
        }
        if (msg?.stream !== this.opts.stream) continue;
        if (msg.kind === ControlType.Ack) {
          if (this.announcedAt !== undefined && now - this.announcedAt < KEEPALIVE_MS) this.relayRttMs = now - this.announcedAt;
          const silent = this.relay.answered(now);
          if (silent !== undefined) {
            this.onRelayState?.('ok', silent);
            // Media stopped because none of it arrived while the relay was gone (killed,
            // restarting): it answers again, so what stopped it has gone (RFC 8083 §4.5), and
            // media goes at once rather than CB_RESUME_MS after the trip. A congestion trip waits.
            if (this.breaker.open?.cause === 'media timeout') this.resumeMedia();
          }
        } else if (msg.kind === ControlType.Refused && this.relay.state !== 'ok') {
          // At the start, or from a relay that came back and will not take us back (keyed now,
          // or the stream taken meanwhile).
          this.onRefused?.(msg.reason);
        }
      } else if (p.type === 'ccfb' && p.senderSsrc === RELAY_SSRC && this.congestion) {
        // The relay's report on our uplink; a viewer's (passed on by an older relay) is not about it.
        for (const r of p.streams) for (const m of r.packets) if (m.received) this.ackedPackets++;
        const kbps = this.congestion.onFeedback(p, now);
        this.pacer!.setRate(this.paceKbps());
        // A probe rides on an idle pacer: behind a queued keyframe it would measure the keyframe.
        const probe = this.pacer!.queued === 0 && !this.breaker.open ? this.congestion.probeDue(now) : undefined;
        if (probe !== undefined) this.sendProbe(probe, now);
        this.onEstimate?.(kbps, this.congestion.takeProbed());
      } else if (p.type === 'nack' && p.senderSsrc === RELAY_SSRC) {
        // What never reached the relay (uplink.ts there): the same bytes again, paced like media.
        const copies: Outgoing[] = [];
        for (const seq of p.lost) {
          const o = this.breaker.open ? undefined : this.sentHistory.take(p.mediaSsrc, seq);
          if (o) copies.push({ ...o, again: true });
          else this.counters.resendMisses++;
        }
        this.counters.resent += copies.length;
        // Ahead of queued media, in the order asked: they repair pictures already late.
        if (this.pacer) for (let i = copies.length - 1; i >= 0; i--) this.pacer.push(copies[i], true);
        else for (const c of copies) this.sendNow(c);
      } else if (p.type === 'pli' && this.isOurs(p.mediaSsrc)) {
        // A fresh encoder run starts every layer with a keyframe.
        this.counters.keyframeRequests++;
        this.onKeyframeRequest?.();
      }
    }
  }

  /** Sends BYE (RFC 3550 §6.6) so the relay ends the stream at once, then closes the socket. */
  async close(reason = 'sharer stopped'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.probeTimer);
    // Parity first, then everything paced goes at once, then BYE: nothing is left on a timer.
    for (const fec of this.fecs ?? []) for (const f of fec.flush()) this.transmit([f], true);
    this.pacer?.flush();
    // Every source that leaves (RFC 3550 §6.6): the sound's too, so a viewer stops filling its silence.
    const ssrcs = [...this.senders.map((s) => s.ssrc), ...(this.audioSender ? [this.audioSender.ssrc] : [])];
    let bye: Buffer[] = [this.rtcp([{ type: 'bye', ssrcs, reason }])];
    if (this.signer) bye = this.signer.sign(bye);
    await new Promise<void>((resolve) => {
      this.socket.send(bye, this.opts.relay.port, this.opts.relay.address, () => resolve());
    });
    this.socketClosed = true;
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

/**
 * Browsers as viewers of the relay, over WebRTC (werift: pure TypeScript, no browser stack on the
 * server). A browser offers (WHEP, draft-ietf-wish-whep: the HTTP server takes the POST and gives
 * the answer); once ICE and DTLS are done it joins through RelayCore.attach like any viewer: it
 * starts from the keyframe cache, its feedback goes through RelayCore.onViewerRtcp, the dashboard
 * counts it.
 *
 * What a browser is sent: the picture as the sharer encoded it (no transcoding), shaped as for an
 * RTSP player (outgoing.ts: one source across layer moves, catch-up stamped up to the live edge, the
 * sound from the join on as plain Opus); the peer connection gives each track its own SSRC and
 * payload type and encrypts (SRTP).
 *
 * What a browser says back, read here and told to the relay in udpcast's own terms:
 * - NACK: the relay answers from its history (the numbers mapped back to the relay's); a repair
 *   goes to the browser as it was numbered first. werift's own answer (from its last 128 packets
 *   sent, by RTX) is not used.
 * - PLI: to the relay, which asks the sharer (coalesced with every other viewer's).
 * - receiver reports: loss and jitter for the dashboard; and they keep the viewer (a tab closed
 *   without a word sends none: it is dropped after WEBRTC_SILENT_MS).
 * - transport-wide congestion feedback (transport-cc, offered on picture and sound for a stream
 *   with layers): read as an RFC 8888 report (twcc.ts), by which the relay chooses the browser's
 *   layer as it does a udpcast viewer's.
 * - its own estimate of its path (REMB, goog-remb, offered on the picture beside transport-cc; a
 *   browser that does not send transport-wide feedback sends it): to the relay as that viewer's
 *   cap on its layer (layers.ts onEstimate); one with no rate, or past REMB_MAX_KBPS, is counted
 *   and dropped.
 *
 * Bounded (defaults.ts WEBRTC_*): sessions in all and per address, the time to connect. ICE only
 * on the relay's own addresses: no STUN or TURN server, host candidates of --host (or every
 * interface for a wildcard --host).
 */
import { randomBytes } from 'node:crypto';
import type * as Werift from 'werift';
import type { RTCPeerConnection, RTCRtpSender, RtcpPacket as WeriftRtcp } from 'werift';
import { WEBRTC_CONNECT_MS, WEBRTC_GATHER_MS, WEBRTC_MAX_SESSIONS, WEBRTC_MAX_SESSIONS_PER_ADDRESS, WEBRTC_SILENT_MS, isAudioPayloadType } from '../../defaults.ts';
import type { Codec } from '../../codecs/codec.ts';
import { isRtp, rtpPayloadType, rtpSequence, rtpSsrc } from '../../rtp/packet.ts';
import { seqDiff } from '../../rtp/seq.ts';
import { isRtcp, parseRtcp, serializeRtcp, type RtcpPacket } from '../../transport/rtcp.ts';
import { ControlType, parseControl } from '../../transport/control.ts';
import type { Endpoint } from '../../util/net.ts';
import type { RelayCore } from '../core.ts';
import { OutgoingStream, liveTime } from '../outgoing.ts';
import { cachedPicture } from '../picture.ts';
import type { DeliverySink, Output } from '../sink.ts';
import { streamEncrypted } from '../rtsp/sdp.ts';
import { narrowOffer } from './offer.ts';
import { TwccReader } from './twcc.ts';
import { BrowserTrack, BrowserWire } from './track.ts';
import type { NativeHelper } from '../io/native.ts';

export interface BrowserViewersOptions {
  core: RelayCore;
  /** The relay's --host: ICE candidates only there (every interface for a wildcard). */
  host: string;
  /** What the relay sends to UDP viewers and sharers after a browser's feedback (retransmissions go through deliver). */
  send: (out: Output[]) => void;
  /** Flushes what attach() queued (the catch-up) now rather than at the next pump tick. */
  pump: () => void;
  log: (line: string) => void;
  now?: () => number;
  /** The relay's native helper, when its datagrams go through it: browsers' packets do too (track.ts). */
  native?: NativeHelper;
}

export interface BrowserCounters {
  /** Offers answered. */
  offers: number;
  /** Offers refused: no such stream, a cap, an offer the relay cannot use. */
  refused: number;
  /** Browsers that completed ICE and DTLS and joined. */
  joined: number;
  /** Browsers that never completed ICE and DTLS within WEBRTC_CONNECT_MS. */
  neverConnected: number;
  /** Browsers that went silent (WEBRTC_SILENT_MS) or whose connection failed. */
  lost: number;
  /** Browsers let go when their stream ended (the page offers again, for the next sharer's picture). */
  ended: number;
  /** Packets the peer connection refused to send (counted, never thrown). */
  sendErrors: number;
  /** Errors the WebRTC stack let escape as unhandled promise rejections: logged once each, counted, not fatal. */
  stackErrors: number;
  /** Transport-wide congestion feedback reports read for the layer choice (browsers of a stream with layers). */
  congestionReports: number;
  /** Receiver estimates (REMB) read for the layer choice (browsers of a stream with layers). */
  rembReports: number;
  /** REMBs dropped: another application feedback than REMB, a rate of 0, or one past REMB_MAX_KBPS. */
  rembDropped: number;
}

/** What an offer gets: an answer and the session's id, or a refusal with its HTTP status. */
export type OfferResult = { answer: string; id: string } | { status: number; why: string };

interface Browser {
  id: string;
  stream: string;
  remote: Endpoint;
  pc: RTCPeerConnection;
  video?: RTCRtpSender;
  audio?: RTCRtpSender;
  since: number;
  lastHeard: number;
  sink?: DeliverySink;
  out?: OutgoingStream;
  /** The newest picture sequence number sent (the browser's numbering): older ones are repairs. */
  lastSent?: number;
  /** The relay's payload type of the picture's codec the browser was answered for. */
  codecPayloadType: number;
  /** Its transport-wide congestion feedback, once a packet carried the number it reports on. */
  twcc?: TwccReader;
  /** What the relay sends on, from the join (ICE and DTLS done: the header extensions are known). */
  videoTrack?: BrowserTrack;
  audioTrack?: BrowserTrack;
}

const TICK_MS = 1000;
/** RTCP feedback by transport-wide numbers (draft-holmer-rmcat-transport-wide-cc-extensions-01). */
const TRANSPORT_CC = { type: 'transport-cc' };
/** RTCP feedback by the receiver's own estimate of its path (draft-alvestrand-rmcat-remb-03). */
const GOOG_REMB = { type: 'goog-remb' };
/** A REMB's rate above this (10 Gbit/s) is no path a viewer has: a broken REMB, dropped. */
const REMB_MAX_KBPS = 10_000_000;
/** The media stream id both tracks are announced in (a=msid); any token, the same for both. */
const MEDIA_STREAM_ID = 'udpcast';

/**
 * werift, loaded by `warm()` (at start for a relay given --http by name, else when a page is first
 * asked for: an offer follows a few hundred ms later) or at the first offer: it takes a third of
 * a second to load (plain node; 0.7-1 s in a relay run through tsx, measured), which every udpcast
 * command, and every relay no browser comes to, would otherwise pay at start, and a browser's
 * first picture at its join.
 */
let werift: typeof Werift | undefined;
let loading: Promise<typeof Werift> | undefined;
const loadWerift = (): Promise<typeof Werift> => (loading ??= import('werift').then((m) => (werift = m)));

export class BrowserViewers {
  readonly counters: BrowserCounters = { offers: 0, refused: 0, joined: 0, neverConnected: 0, lost: 0, ended: 0, sendErrors: 0, stackErrors: 0, congestionReports: 0, rembReports: 0, rembDropped: 0 };
  private readonly sessions = new Map<string, Browser>();
  /** Offers being answered (their peer connections exist, their sessions not yet), by address: counted against the caps. */
  private readonly pending = new Map<string, number>();
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  /** Wires with packets waiting for the end of this turn of the loop (track.ts BrowserWire). */
  private readonly unsent = new Set<BrowserWire>();
  private readonly now: () => number;

  constructor(private readonly opts: BrowserViewersOptions) {
    this.now = opts.now ?? Date.now;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    // werift runs a browser's ICE, DTLS and SRTP in promises, some of which it does not catch; by
    // default node ends the process on one, and with it every viewer of the relay. Such an error
    // is one browser's: said once, counted.
    process.on('unhandledRejection', this.onStackError);
  }

  private readonly said = new Set<string>();
  private readonly onStackError = (err: unknown): void => {
    this.counters.stackErrors++;
    const where = err instanceof Error ? err.stack?.split('\n').find((l) => l.trim().startsWith('at '))?.trim() : undefined;
    const text = `${err instanceof Error ? err.message : String(err)}${where ? ` (${where})` : ''}`;
    if (this.said.size < 100 && !this.said.has(text)) {
      this.said.add(text);
      this.opts.log(`webrtc: an error nobody caught (werift leaves some of its own so); the relay goes on: ${text}`);
    }
  };

  get size(): number {
    return this.sessions.size;
  }

  /** A browser's WHEP offer for `stream`, from `remote`. */
  async offer(stream: string, sdp: string, remote: Endpoint): Promise<OfferResult> {
    const refuse = (status: number, why: string): OfferResult => {
      this.counters.refused++;
      return { status, why };
    };
    const s = this.opts.core.streams.get(stream);
    const picture = cachedPicture(s);
    if (!s?.publisher || !picture) return refuse(404, `no stream ${stream} here now (or no picture of it yet)`);
    if (streamEncrypted(s)) return refuse(415, `stream ${stream} is end-to-end encrypted: only udpcast watch with its key can show it`);
    const pick = picture.codec.webrtcFormat;
    if (!pick) return refuse(415, `stream ${stream} is ${picture.codec.label}, which browsers do not take over WebRTC: watch it with udpcast watch`);
    if (this.closed) return refuse(503, 'the relay is stopping');
    const pendingHere = this.pending.get(remote.address) ?? 0;
    const pendingAll = [...this.pending.values()].reduce((a, b) => a + b, 0);
    if (this.sessions.size + pendingAll >= WEBRTC_MAX_SESSIONS) return refuse(503, `the relay has ${WEBRTC_MAX_SESSIONS} browser viewers already`);
    if ([...this.sessions.values()].filter((b) => b.remote.address === remote.address).length + pendingHere >= WEBRTC_MAX_SESSIONS_PER_ADDRESS) {
      return refuse(503, `${WEBRTC_MAX_SESSIONS_PER_ADDRESS} browser viewers from ${remote.address} already`);
    }
    const narrowed = narrowOffer(sdp, (offered) => pick(offered, picture.payloads));
    if ('error' in narrowed) return refuse(415, narrowed.error);
    // The slot is taken before the first await: offers sent together are counted against the caps too.
    this.pending.set(remote.address, pendingHere + 1);
    try {
      return await this.answer(stream, narrowed.sdp, remote, picture.codec);
    } finally {
      const left = (this.pending.get(remote.address) ?? 1) - 1;
      if (left > 0) this.pending.set(remote.address, left);
      else this.pending.delete(remote.address);
    }
  }

  /** The peer connection for a narrowed offer, and its answer once its candidates are gathered. */
  private async answer(stream: string, sdp: string, remote: Endpoint, codec: Codec): Promise<OfferResult> {
    const w = await loadWerift();
    if (this.closed) return { status: 503, why: 'the relay is stopping' };
    // Transport-wide numbers on picture and sound alike, for a stream with layers: the browser's
    // feedback about them is what the relay chooses its layer by (twcc.ts), as it reads a udpcast
    // viewer's RFC 8888. With one layer there is no choice to make, and no numbers are sent to be
    // reported on (Chromium sends about 15 reports a second, each decrypted and read). A browser's
    // own estimate (REMB) is asked for on the picture too, for one that sends no transport-wide
    // feedback. (werift 0.24's answer repeats the offer's rtcp-fb lines for the format it takes,
    // whatever these list: goog-remb and transport-cc are answered wherever offered; the header
    // extension is what only a stream with layers gets.)
    const layered = this.layered(stream);
    const cc = layered ? [TRANSPORT_CC] : [];
    const remb = layered ? [GOOG_REMB] : [];
    const pc = new w.RTCPeerConnection({
      iceServers: [],
      // One transport for picture and sound, as browsers bundle them: with werift's default
      // ("max-compat") the unused second transport's sockets outlive close().
      bundlePolicy: 'max-bundle',
      ...iceAddresses(this.opts.host),
      codecs: {
        video: [new w.RTCRtpCodecParameters({ mimeType: `video/${codec.rtpmapName}`, clockRate: codec.clockRate, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, ...cc, ...remb] })],
        audio: [w.useOPUS({ rtcpFeedback: cc })],
      },
      headerExtensions: {
        video: [w.useSdesMid(), ...(layered ? [w.useTransportWideCC()] : [])],
        audio: [w.useSdesMid(), ...(layered ? [w.useTransportWideCC()] : [])],
      },
    });
    const now = this.now();
    const b: Browser = { id: randomBytes(12).toString('hex'), stream, remote, pc, since: now, lastHeard: now, codecPayloadType: codec.payloadType };
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      for (const t of pc.getTransceivers()) {
        t.setDirection('sendonly');
        // One media stream for picture and sound (a=msid, RFC 8830): a browser plays the tracks of
        // one stream in sync (Chromium's lip sync pairs only those), by the two sources' SRs.
        // werift names none unless told, and then each track is on its own.
        t.sender.streamIds = [MEDIA_STREAM_ID];
        if (t.kind === 'video') b.video ??= t.sender;
        else if (t.kind === 'audio') b.audio ??= t.sender;
      }
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
    } catch (err) {
      await pc.close().catch(() => undefined);
      this.counters.refused++;
      return { status: 400, why: `the offer could not be answered: ${(err as Error).message}` };
    }
    if (this.closed) {
      await pc.close().catch(() => undefined);
      this.counters.refused++;
      return { status: 503, why: 'the relay is stopping' };
    }
    // Any RTCP from the browser keeps it (a report reaches a sender only while it has a block about
    // it); its transport-wide feedback and its REMB are read here, whichever track's SSRC they name.
    (b.video ?? b.audio)?.dtlsTransport.onRtcp.subscribe((p) => {
      b.lastHeard = this.now();
      if (p instanceof w.RtcpTransportLayerFeedback && p.feedback instanceof w.TransportWideCC) this.congestion(b, p.feedback);
      else if (p instanceof w.RtcpPayloadSpecificFeedback && p.feedback instanceof w.ReceiverEstimatedMaxBitrate) this.estimate(b, p.feedback);
    });
    if (b.video) this.readFeedback(b, b.video);
    if (b.audio) this.readFeedback(b, b.audio);
    pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected') this.join(b);
      else if (state === 'failed' || state === 'closed') this.drop(b, true);
    });
    this.sessions.set(b.id, b);
    this.counters.offers++;
    return { answer: pc.localDescription!.sdp, id: b.id };
  }

  /** A page was asked for (the list, or a stream's): an offer may come soon, so werift starts loading. */
  warm(): void {
    loadWerift().catch(() => undefined);
  }

  /** WHEP's DELETE of the session's resource: the browser left. False: no such session. */
  close(stream: string, id: string): boolean {
    const b = this.sessions.get(id);
    if (!b || b.stream !== stream) return false;
    this.end(b, true);
    return true;
  }

  closeAll(): void {
    this.closed = true;
    clearInterval(this.timer);
    process.off('unhandledRejection', this.onStackError);
    for (const b of [...this.sessions.values()]) this.end(b, true);
  }

  /** ICE and DTLS are done: the browser joins its stream, caught up from the keyframe cache. */
  private join(b: Browser): void {
    if (b.sink || !this.sessions.has(b.id)) return;
    const sink: DeliverySink = {
      kind: 'webrtc',
      id: `webrtc:${b.id}`,
      endpoint: b.remote,
      deliver: (data) => this.deliver(b, data),
      closed: () => this.end(b, false),
      soundAtOnce: true,
    };
    const now = this.now();
    b.lastHeard = now;
    b.sink = sink;
    const wire = new BrowserWire(this.opts.native, () => this.counters.sendErrors++, (w) => this.waiting(w));
    if (b.video) b.videoTrack = new BrowserTrack(werift!, b.video, wire);
    if (b.audio) b.audioTrack = new BrowserTrack(werift!, b.audio, wire);
    if (!this.opts.core.attach(b.stream, sink, now)) {
      this.counters.refused++;
      this.end(b, false);
      return;
    }
    const s = this.opts.core.streams.get(b.stream);
    // The live picture's time as each catch-up picture goes (OutgoingStream.sendingStamp), of the
    // layer the browser is on then.
    const live = () => {
      const v = this.opts.core.streams.get(b.stream)?.viewers.get(sink.id);
      return v && liveTime(v.lane, this.now());
    };
    b.out = OutgoingStream.joining(s, s?.viewers.get(sink.id), live);
    this.counters.joined++;
    this.opts.pump();
  }

  private deliver(b: Browser, data: Buffer): boolean {
    const out = b.out;
    if (!out) return true;
    if (!isRtp(data)) {
      // The sharer's sender reports: the browser's say the same (track.ts). The relay's ENDED: the
      // browser was answered for this sharer's picture (codec, profile, encryption); the page
      // offers again, for the next one's.
      if (isEnded(data)) {
        this.counters.ended++;
        queueMicrotask(() => this.end(b, true));
      } else this.reports(b, out, data);
      return true;
    }
    const pt = rtpPayloadType(data);
    if (isAudioPayloadType(pt)) {
      const opus = b.audioTrack && out.nextSound(data);
      if (opus) this.transmit(b, b.audioTrack!, opus, data, true);
      return true;
    }
    if (pt !== b.codecPayloadType || !b.videoTrack) return true; // FEC and the like, or a codec it was not answered for
    const pkt = out.nextPicture(data);
    if (!pkt) return true; // of its layer, from before the browser was moved onto it
    const seq = rtpSequence(pkt);
    // Older than the newest sent: a repair from the relay's history, as the browser numbered it first.
    const fresh = b.lastSent === undefined || seqDiff(b.lastSent, seq) > 0;
    if (fresh) b.lastSent = seq;
    this.transmit(b, b.videoTrack, pkt, data, fresh);
    return true;
  }

  /** `w` has packets to send at the end of this turn: one flush for every wire then. */
  private waiting(w: BrowserWire): void {
    if (this.unsent.size === 0) queueMicrotask(() => {
      for (const x of this.unsent) x.flush();
      this.unsent.clear();
    });
    this.unsent.add(w);
  }

  /** `pkt`, shaped for the browser, of `source` as the relay numbered it (what its congestion feedback will be about). */
  private transmit(b: Browser, track: BrowserTrack, pkt: Buffer, source: Buffer, fresh: boolean): void {
    const tw = track.send(pkt, fresh);
    if (tw !== undefined) (b.twcc ??= new TwccReader()).sent(tw, rtpSsrc(source), rtpSequence(source));
  }

  /**
   * The sharer's sender reports, each to the browser's track it is about; the picture's only once
   * the relay has caught it up (a join's or a move's cache, and the live packets queued behind it).
   * Chromium's lip sync compares when each track's packets arrive with when they were captured
   * (the reports say that): a catch-up's pictures come up to its length late (they are paced), so
   * a report in it had the browser hold the sound back by that much, and take seconds to undo it
   * (the sound 235-609 ms after its picture after a join, bench lipsync).
   */
  private reports(b: Browser, out: OutgoingStream, data: Buffer): void {
    const catchingUp = b.sink !== undefined && this.opts.core.streams.get(b.stream)?.viewers.get(b.sink.id)?.catchUp !== undefined;
    for (const { kind, report } of out.senderReports(data)) {
      if (kind === 'video' && catchingUp) continue;
      (kind === 'video' ? b.videoTrack : b.audioTrack)?.report(report.ntpSec, report.ntpFrac, report.rtpTimestamp);
    }
  }

  /**
   * A browser's transport-wide feedback, as RFC 8888 to the relay, whose layer choice reads it
   * (only a stream with layers has a choice to make). werift's own estimator does not see it.
   */
  private congestion(b: Browser, fb: Werift.TransportWideCC): void {
    if (!b.twcc || !b.sink || !this.layered(b.stream)) return;
    const now = this.now();
    this.counters.congestionReports++;
    const ccfb = b.twcc.read(fb, now, fb.senderSsrc);
    if (ccfb) this.opts.send(this.opts.core.onViewerRtcp(b.sink.id, serializeRtcp([ccfb]), now));
  }

  /**
   * A browser's REMB: its estimate of what its path takes, picture and sound together, to the relay
   * as a cap on its layer (a stream with layers only, as congestion()). werift parses any
   * application feedback as one and reads an exponent past 46 as 2^64 - 1: such a REMB, or one of
   * rate 0, is counted and dropped.
   */
  private estimate(b: Browser, remb: Werift.ReceiverEstimatedMaxBitrate): void {
    const kbps = rembKbps(remb);
    if (kbps === undefined) {
      this.counters.rembDropped++;
      return;
    }
    if (!b.sink || !this.layered(b.stream)) return;
    this.counters.rembReports++;
    this.opts.send(this.opts.core.viewerEstimate(b.stream, b.sink.id, kbps, this.now()));
  }

  /** Whether `stream` has quality layers: only then is there a layer to choose for a browser. */
  private layered(stream: string): boolean {
    return (this.opts.core.streams.get(stream)?.lanes.length ?? 0) > 1;
  }

  /** The browser's RTCP about one track, in udpcast's terms, to the relay. */
  private readFeedback(b: Browser, sender: RTCRtpSender): void {
    const own = sender.handleRtcpPacket.bind(sender);
    sender.handleRtcpPacket = (p: WeriftRtcp) => {
      b.lastHeard = this.now();
      if (p instanceof werift!.RtcpTransportLayerFeedback && p.feedback instanceof werift!.TransportWideCC) return; // read by congestion()
      if (p instanceof werift!.RtcpPayloadSpecificFeedback && p.feedback instanceof werift!.ReceiverEstimatedMaxBitrate) return; // read by estimate()
      const ours = b.out && b.sink ? this.translate(b, b.out, sender, p) : undefined;
      if (ours === 'nack') return; // answered from the relay's history, not werift's
      own(p);
      if (ours) this.opts.send(this.opts.core.onViewerRtcp(b.sink!.id, serializeRtcp([ours]), this.now()));
    };
  }

  /** A browser's NACK, PLI or report about `sender`'s track as the relay numbers that track. */
  private translate(b: Browser, out: OutgoingStream, sender: RTCRtpSender, p: WeriftRtcp): RtcpPacket | 'nack' | undefined {
    const { GenericNack, PictureLossIndication, RtcpPayloadSpecificFeedback, RtcpRrPacket, RtcpTransportLayerFeedback } = werift!;
    const video = sender.kind === 'video';
    const mediaSsrc = video ? out.videoSsrc : out.audioSsrc;
    if (mediaSsrc === undefined) return undefined;
    if (p instanceof RtcpTransportLayerFeedback && p.feedback instanceof GenericNack) {
      // Sound has no repair path to a browser (Opus FEC covers it); the picture's numbers map back.
      if (!video) return 'nack';
      const lost = p.feedback.lost.map((seq) => out.sourceSequence(seq)).filter((s): s is number => s !== undefined);
      if (lost.length) this.opts.send(this.opts.core.onViewerRtcp(b.sink!.id, serializeRtcp([{ type: 'nack', senderSsrc: p.feedback.senderSsrc, mediaSsrc, lost }]), this.now()));
      return 'nack';
    }
    if (video && p instanceof RtcpPayloadSpecificFeedback && p.feedback instanceof PictureLossIndication) {
      return { type: 'pli', senderSsrc: p.feedback.senderSsrc, mediaSsrc };
    }
    if (p instanceof RtcpRrPacket) {
      const r = p.reports.find((x) => x.ssrc === sender.ssrc);
      if (!r) return undefined;
      // The round trip werift measured from its own sender reports (the report's LSR names those,
      // not the relay's): given to the relay before the report, whose circuit breaker reads both.
      const rttS = (sender as unknown as { rtt?: number }).rtt;
      if (video && rttS !== undefined) this.opts.core.viewerRtt(b.stream, b.sink!.id, rttS * 1000);
      const highest = video ? out.sourceSequence(r.highestSequence & 0xffff) : undefined;
      return {
        type: 'rr',
        ssrc: p.ssrc,
        // werift reads the 24-bit cumulative loss unsigned; duplicates make it negative (RFC 3550 §6.4.1).
        reports: [{ ssrc: mediaSsrc, fractionLost: r.fractionLost, cumulativeLost: (r.packetsLost << 8) >> 8, highestSeq: ((r.highestSequence & ~0xffff) | (highest ?? r.highestSequence & 0xffff)) >>> 0, jitter: r.jitter, lsr: 0, dlsr: 0 }],
      };
    }
    return undefined;
  }

  private tick(): void {
    const now = this.now();
    for (const b of [...this.sessions.values()]) {
      if (!b.sink) {
        if (now - b.since > WEBRTC_CONNECT_MS) {
          this.counters.neverConnected++;
          this.end(b, false);
        }
      } else if (now - b.lastHeard > WEBRTC_SILENT_MS) {
        this.drop(b, true);
      } else {
        // The relay drops a viewer not heard from in VIEWER_TIMEOUT_MS: the browser's reports keep it.
        this.opts.core.attach(b.stream, b.sink, now);
      }
    }
  }

  /** A browser gone without a word (silent, or its connection failed). */
  private drop(b: Browser, detach: boolean): void {
    if (!this.sessions.has(b.id)) return;
    if (b.sink) this.counters.lost++;
    this.end(b, detach);
  }

  /** Ends a session; `detach`: the relay is told (else it is the one that dropped the viewer). */
  private end(b: Browser, detach: boolean): void {
    if (!this.sessions.delete(b.id)) return;
    if (detach && b.sink && b.out) this.opts.core.detach(b.stream, b.sink.id);
    b.out = undefined;
    b.pc.close().catch(() => undefined);
  }
}

/**
 * A REMB's rate in kbit/s (draft-alvestrand-rmcat-remb-03 §2.2: an 18-bit mantissa times 2 to a
 * 6-bit exponent, in bit/s), or undefined for application feedback that is not REMB's or a rate no
 * path has (0, past REMB_MAX_KBPS).
 */
export function rembKbps(remb: { uniqueID: string; bitrate: bigint }): number | undefined {
  if (remb.uniqueID !== 'REMB' || typeof remb.bitrate !== 'bigint') return undefined;
  const kbps = Number(remb.bitrate) / 1000;
  return Number.isFinite(kbps) && kbps > 0 && kbps <= REMB_MAX_KBPS ? kbps : undefined;
}

/** Whether a datagram the relay sends its viewers is its ENDED notice (the sharer left). */
function isEnded(data: Buffer): boolean {
  if (!isRtcp(data)) return false;
  try {
    return parseRtcp(data).some((p) => p.type === 'app' && parseControl(p)?.kind === ControlType.Ended);
  } catch {
    return false;
  }
}

/** werift's ICE options for the relay's --host: candidates on that address only, or on every interface for a wildcard. */
function iceAddresses(host: string): Record<string, unknown> {
  const v6 = host.includes(':');
  if (host === '0.0.0.0' || host === '::') return { iceUseIpv4: true, iceUseIpv6: v6 };
  // werift leaves loopback out of its host candidates unless it is named as an extra one.
  return { iceUseIpv4: !v6, iceUseIpv6: v6, iceInterfaceAddresses: v6 ? { udp6: host } : { udp4: host }, iceAdditionalHostAddresses: [host] };
}

/** Resolves once the peer connection has gathered its candidates (no trickle in WHEP's answer here), or after WEBRTC_GATHER_MS. */
function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, WEBRTC_GATHER_MS);
    pc.iceGatheringStateChange.subscribe((state) => {
      if (state === 'complete') {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

/**
 * The relay's routing table as a pure object: datagrams and the clock go in, datagrams to send come
 * out. No sockets or timers here (server.ts wires them), so every rule is tested without a network.
 *
 * Rules:
 * - A stream is created by a PUBLISH from its sharer and latched to that sharer's address; RTP and
 *   RTCP from any other address for it are dropped and counted, until the sharer says BYE or goes
 *   silent for PUBLISHER_TIMEOUT_MS.
 * - A viewer SUBSCRIBEs by name (repeating it as keepalive) and gets an ACK no larger than its
 *   request; it may subscribe before the stream exists and gets the stream once it starts.
 * - Media and the sharer's RTCP (SR, SDES, BYE) go to every viewer as the same buffer, received once,
 *   sent as is. Viewers' RTCP (RR, NACK, PLI) goes to the sharer.
 */
import {
  CATCHUP_MAX_PACKETS,
  JOIN_BURST_BYTES,
  JOIN_PACE_BYTES_PER_MS,
  KEYFRAME_CACHE_BYTES,
  RTX_HISTORY_PACKETS,
  RTX_MAX_PER_SECOND,
  MAX_DATAGRAM,
  MAX_STREAMS,
  MAX_VIEWERS,
  MAX_VIEWERS_PER_STREAM,
  PUBLISHER_TIMEOUT_MS,
  VIEWER_TIMEOUT_MS,
} from '../defaults.ts';
import { ControlType, RefuseReason, controlApp, parseControl, type ControlMessage } from '../transport/control.ts';
import { CookieJar } from './cookie.ts';
import {
  AUTH_TRAILER_BYTES,
  ReplayGuard,
  readFrameInfo,
  rtpHeaderLength,
  streamKeys,
  verifyAuthTag,
  verifyWatchProof,
  type AuthKeys,
  type MasterKey,
} from '../transport/secure.ts';
import { PacketError, unlessMalformed } from '../util/errors.ts';
import { isRtcp, parseRtcp, serializeRtcp, type RtcpPacket, type ReportBlock } from '../transport/rtcp.ts';
import { isRtp } from '../rtp/packet.ts';
import { startsKeyframe } from '../transport/keyframe.ts';

export { startsKeyframe };
import { ntpMiddle32 } from '../transport/ntp.ts';

import type { Endpoint } from '../util/net.ts';

/** One buffer for many destinations: the relay serializes once and sends the same bytes to all. */
export interface Output {
  data: Buffer;
  /**
   * Never changed after it is returned: stream.targets is replaced on every join and leave, not
   * edited, so a sender may cache per list (fanout-send.ts does).
   */
  to: readonly Endpoint[];
}

export interface ViewerState {
  endpoint: Endpoint;
  key: string;
  since: number;
  lastSeen: number;
  /** stream.fanOuts when this viewer joined: fanOuts since then is what it was sent. */
  joinedAtFanOut: number;
  /**
   * A joining viewer first gets the keyframe cache, paced; live packets queue behind it so the
   * viewer sees one unbroken sequence. Undefined once it is live (in `targets`).
   */
  catchUp?: { stream: StreamState; queue: Buffer[]; head: number; credit: number; lastPump: number };
  /** Keepalive budget: KEEPALIVES_PER_SECOND, bursts of KEEPALIVE_BURST. */
  keepaliveTokens: number;
  /** Retransmission budget: a token bucket of RTX_MAX_PER_SECOND. */
  rtxTokens: number;
  rtxRefilled: number;
  retransmissions: number;
  /** The latest report block this viewer sent about the stream, for the dashboard. */
  lastReport?: ReportBlock;
  /** Relay ↔ viewer round trip from that block's LSR/DLSR and when we forwarded that SR. */
  rttMs?: number;
  sendErrors: number;
}

export interface StreamState {
  name: string;
  publisher?: { endpoint: Endpoint; key: string; ssrc: number; since: number; lastSeen: number };
  viewers: Map<string, ViewerState>;
  /** Cached list of viewer endpoints, rebuilt when membership changes (the hot path reuses it). */
  targets: Endpoint[];
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /** Datagrams fanned out to every viewer (each counts once, whatever the number of viewers). */
  fanOuts: number;
  /**
   * What this stream lost or refused: PUBLISHes from another address, its publisher's datagrams
   * that failed --key, and sends to its viewers that failed.
   */
  dropped: number;
  /** When each recent SR (by its middle 32 NTP bits, the LSR viewers echo) went out to viewers. */
  srForwarded: Map<number, number>;
  /** The publisher's latest RTCP compound with an SR: a joining viewer gets it first (clock mapping). */
  lastSr?: Buffer;
  /** Recent media packets by sequence number modulo RTX_HISTORY_PACKETS, for retransmission. */
  history: (Buffer | undefined)[];
  /** Media packets since the start of the latest keyframe (JPEG: the latest frame); undefined when over the cap. */
  cache?: Buffer[];
  cacheBytes: number;
  /** RTP timestamp of the previous media packet: a change marks the first packet of a frame. */
  lastTimestamp?: number;
  /** The salt the sharer announced (--key / --encrypt); viewers get it in their ACK. */
  salt?: Buffer;
  /** --key: the publisher's authentication keys and replay state. */
  auth?: AuthKeys;
  guard?: ReplayGuard;
}

/** Distinct log-once keys remembered before starting over. */
const MAX_WARNED = 1000;
/** A viewer keepalives once a second; this leaves room for retries and bursts, not floods. */
const KEEPALIVES_PER_SECOND = 10;
const KEEPALIVE_BURST = 10;
/** Challenges per hashed address per second, over this many buckets (a fixed 64 KB). */
const UNPROVEN_PER_SECOND = 10;
const UNPROVEN_BUCKETS = 4096;

/**
 * Token buckets for addresses that have no state of their own: addresses hash into a fixed
 * table, so a flood from many forged addresses costs no memory (and shares buckets).
 */
class HashedRateLimiter {
  private readonly tokens: Float64Array;
  private readonly at: Float64Array;
  constructor(
    private readonly size: number,
    private readonly perSecond: number,
  ) {
    this.tokens = new Float64Array(size).fill(perSecond);
    this.at = new Float64Array(size);
  }
  take(key: string, now: number): boolean {
    let h = 0x811c9dc5; // FNV-1a
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    const i = (h >>> 0) % this.size;
    this.tokens[i] = Math.min(this.perSecond, this.tokens[i] + ((now - this.at[i]) * this.perSecond) / 1000);
    this.at[i] = now;
    if (this.tokens[i] < 1) return false;
    this.tokens[i]--;
    return true;
  }
}

/** Recent SRs remembered per stream for RTT; RRs echo the latest, so a few seconds' worth is plenty. */
const SR_HISTORY = 8;

export interface RelayCounters {
  datagramsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /** Datagrams that were not RTP/RTCP or failed to parse. */
  malformed: number;
  /** Datagrams larger than MAX_DATAGRAM. */
  oversize: number;
  /** Media or RTCP from an address that is neither a publisher nor a viewer. */
  unknownSource: number;
  /** PUBLISH for a stream latched to another address. */
  hijackAttempts: number;
  /** Streams or viewers refused because a cap was reached. */
  overLimit: number;
  sendErrors: number;
  /** Packets re-sent from history in answer to a viewer's NACK. */
  retransmissions: number;
  /** NACKed packets the history no longer had, or over a viewer's retransmission budget. */
  rtxMisses: number;
  /** Viewers that joined with the keyframe cache (instant start). */
  cacheJoins: number;
  /** Datagrams that failed --key authentication (tag, replay) or SUBSCRIBEs without a valid --watch-key proof. */
  authFailures: number;
  /** CHALLENGEs sent to unproven addresses. */
  challenges: number;
  /** Control messages dropped for arriving faster than an address may send them. */
  rateLimited: number;
}

export interface RelayCoreOptions {
  /** Master key from --key (deriveMasterKey): publishers must authenticate every datagram. */
  key?: MasterKey;
  /** From --watch-key (deriveWatchKey): viewers must prove it in their SUBSCRIBE. */
  watchKey?: Buffer;
}

/** How a publisher datagram was authenticated before it reached the RTCP handler. */
type Authenticated = { keys: AuthKeys; guard: ReplayGuard; salt: Buffer } | 'latched' | undefined;

export function endpointKey(e: Endpoint): string {
  return `${e.address}|${e.port}`;
}

/** The relay's own SSRC for the control messages it originates. */
const RELAY_SSRC = 0;

export class RelayCore {
  readonly streams = new Map<string, StreamState>();
  /** Which stream each publisher address feeds: the lookup for every media packet. */
  private readonly byPublisher = new Map<string, StreamState>();
  readonly counters: RelayCounters = {
    datagramsIn: 0,
    bytesIn: 0,
    packetsOut: 0,
    bytesOut: 0,
    malformed: 0,
    oversize: 0,
    unknownSource: 0,
    hijackAttempts: 0,
    overLimit: 0,
    sendErrors: 0,
    retransmissions: 0,
    rtxMisses: 0,
    cacheJoins: 0,
    challenges: 0,
    rateLimited: 0,
    authFailures: 0,
  };
  private readonly cookies: CookieJar;
  /** Challenge rate per (hashed) address: bounded memory whatever the number of addresses. */
  private readonly unproven = new HashedRateLimiter(UNPROVEN_BUCKETS, UNPROVEN_PER_SECOND);

  /** --key: publishers must sign every datagram with keys derived from it. */
  private readonly master?: MasterKey;
  /** --watch-key: viewers must prove they know it. */
  private readonly watchKey?: Buffer;

  constructor(now = Date.now(), opts: RelayCoreOptions = {}) {
    this.cookies = new CookieJar(now);
    this.master = opts.key;
    this.watchKey = opts.watchKey;
  }
  /** Viewers still being sent their catch-up. */
  private readonly catchingUp = new Set<ViewerState>();
  private viewerCount = 0;
  /** Logged once per kind of limit, so a flood does not flood the log. */
  private readonly warned = new Set<string>();
  onLog?: (line: string) => void;

  get viewers(): number {
    return this.viewerCount;
  }

  /** Handles one datagram; returns what to send. Never throws for bad input. */
  onDatagram(buf: Buffer, from: Endpoint, now: number): Output[] {
    this.counters.datagramsIn++;
    this.counters.bytesIn += buf.length;
    if (buf.length > MAX_DATAGRAM) {
      this.counters.oversize++;
      return [];
    }
    const key = endpointKey(from);
    const latched = this.byPublisher.get(key);
    let auth: Authenticated;
    if (latched?.auth) {
      // Everything a keyed publisher sends carries a trailer: verified, then forwarded without it.
      const r = verifyAuthTag(buf, latched.auth, latched.guard);
      if (!r.ok) {
        this.counters.authFailures++;
        latched.dropped++;
        return [];
      }
      buf = r.packet;
      auth = 'latched';
    }
    if (isRtcp(buf)) return this.onRtcp(buf, from, key, now, auth);
    if (isRtp(buf)) {
      const stream = latched;
      if (!stream) {
        this.counters.unknownSource++;
        return [];
      }
      stream.publisher!.lastSeen = now;
      if (unlessMalformed(() => rtpHeaderLength(buf), undefined) === undefined) {
        // CSRCs or an extension longer than the datagram (found by fuzzing): no viewer could parse it either.
        this.counters.malformed++;
        stream.dropped++;
        return [];
      }
      stream.packetsIn++;
      stream.bytesIn += buf.length;
      if (buf.readUInt32BE(8) === stream.publisher!.ssrc) this.remember(stream, buf);
      return this.fanOut(stream, buf);
    }
    this.counters.malformed++;
    return [];
  }

  /** True while a joining viewer's catch-up is being paced out: call pump() every few ms. */
  get pumping(): boolean {
    return this.catchingUp.size > 0;
  }

  /**
   * Sends joining viewers the next part of their catch-up, within the pace JOIN_PACE_BYTES_PER_MS;
   * a viewer whose queue is empty goes live.
   */
  pump(now: number): Output[] {
    const out: Output[] = [];
    for (const v of this.catchingUp) {
      const c = v.catchUp!;
      c.credit = Math.min(JOIN_BURST_BYTES, c.credit + (now - c.lastPump) * JOIN_PACE_BYTES_PER_MS);
      c.lastPump = now;
      while (c.head < c.queue.length && c.credit > 0) {
        const data = c.queue[c.head++];
        c.credit -= data.length;
        out.push({ data, to: [v.endpoint] });
        this.counters.packetsOut++;
        this.counters.bytesOut += data.length;
      }
      if (c.head >= c.queue.length) out.push(...this.goLive(c.stream, v));
    }
    return out;
  }

  /** Expires silent viewers and publishers; returns the ENDED notices to send. */
  tick(now: number): Output[] {
    const out: Output[] = [];
    this.cookies.tick(now);
    for (const stream of this.streams.values()) {
      for (const [k, v] of stream.viewers) {
        if (now - v.lastSeen > VIEWER_TIMEOUT_MS) this.removeViewer(stream, k);
      }
      if (stream.publisher && now - stream.publisher.lastSeen > PUBLISHER_TIMEOUT_MS) {
        this.log(`stream ${stream.name}: publisher ${fmt(stream.publisher.endpoint)} silent, stream ended`);
        out.push(...this.endStream(stream));
      }
      if (!stream.publisher && stream.viewers.size === 0) this.streams.delete(stream.name);
    }
    return out;
  }

  /** Counts a failed send to one viewer; the loop over the others goes on. */
  sendFailed(to: Endpoint): void {
    this.counters.sendErrors++;
    for (const s of this.streams.values()) {
      const v = s.viewers.get(endpointKey(to));
      if (!v) continue;
      v.sendErrors++;
      s.dropped++;
    }
  }

  private onRtcp(buf: Buffer, from: Endpoint, key: string, now: number, auth: Authenticated): Output[] {
    let packets: RtcpPacket[];
    try {
      packets = parseRtcp(buf);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      // Perhaps a signed PUBLISH from a sharer we do not know yet: the trailer made it unparsable.
      if (!auth) return this.signedPublish(buf, from, key, now);
      this.counters.malformed++;
      return [];
    }
    const out: Output[] = [];
    let controlOnly = true;
    let handled = false;
    for (const p of packets) {
      if (p.type !== 'app') {
        controlOnly = false;
        continue;
      }
      let msg;
      try {
        msg = parseControl(p);
      } catch (err) {
        if (err instanceof PacketError) {
          this.counters.malformed++;
          return out;
        }
        throw err;
      }
      if (!msg) {
        controlOnly = false;
        continue;
      }
      handled = true;
      switch (msg.kind) {
        case ControlType.Publish: {
          const ack = this.publish(msg, from, key, p.ssrc, now, auth);
          if (ack) out.push(ack);
          break;
        }
        case ControlType.Subscribe: {
          const reply = this.subscribe(msg, buf.length, from, key, now);
          if (reply) out.push(reply);
          break;
        }
        case ControlType.Leave: {
          const s = this.streams.get(msg.stream);
          if (s?.viewers.has(key)) this.removeViewer(s, key);
          break;
        }
        default:
          this.counters.malformed++; // ACK/ENDED travel from the relay, never to it
      }
    }
    if (controlOnly) return out;
    // Reports and feedback: the publisher's go to its viewers, a viewer's to the publisher.
    const published = this.byPublisher.get(key);
    if (published) {
      published.publisher!.lastSeen = now;
      for (const p of packets) {
        if (p.type !== 'sr') continue;
        published.lastSr = buf;
        published.srForwarded.set(ntpMiddle32(p.ntpSec, p.ntpFrac), now);
        if (published.srForwarded.size > SR_HISTORY) {
          published.srForwarded.delete(published.srForwarded.keys().next().value!);
        }
      }
      out.push(...this.fanOut(published, buf));
      if (packets.some((p) => p.type === 'bye')) out.push(...this.endStream(published, false));
      return out;
    }
    let forwarded = false;
    for (const s of this.streams.values()) {
      const v = s.viewers.get(key);
      if (!v) continue;
      v.lastSeen = now;
      for (const p of packets) {
        if (p.type === 'nack' && p.mediaSsrc === s.publisher?.ssrc) out.push(...this.retransmit(s, v, p.lost, now));
      }
      for (const p of packets) {
        if (p.type === 'rr' || p.type === 'sr') {
          const block = p.reports.find((r) => r.ssrc === s.publisher?.ssrc);
          if (!block) continue;
          v.lastReport = block;
          const sent = block.lsr ? s.srForwarded.get(block.lsr) : undefined;
          if (sent !== undefined) v.rttMs = Math.max(0, now - sent - (block.dlsr * 1000) / 65536);
        }
      }
      if (s.publisher) {
        out.push({ data: buf, to: [s.publisher.endpoint] });
        this.counters.packetsOut++;
        this.counters.bytesOut += buf.length;
      }
      forwarded = true;
    }
    if (!forwarded && !handled) this.counters.unknownSource++;
    return out;
  }

  /** Latches (or refreshes) a publisher; returns the ACK, or null when refused. */
  private publish(msg: ControlMessage, from: Endpoint, key: string, ssrc: number, now: number, auth: Authenticated): Output | null {
    const name = msg.stream;
    if (this.master && !auth) {
      this.counters.authFailures++;
      return this.refuse(name, RefuseReason.BadKey, from, now); // a keyed relay takes only signed publishers
    }
    let stream = this.streams.get(name);
    const current = stream?.publisher;
    const other = this.byPublisher.get(key);
    // Refusals come before anything is stored: a refused name must leave no entry behind, or one
    // address publishing random names would grow the table without bound.
    if ((current && current.key !== key) || (other && other !== stream)) {
      // Latched to another sharer (or this address already publishes another name).
      this.counters.hijackAttempts++;
      if (stream) stream.dropped++;
      return this.refuse(name, RefuseReason.Taken, from, now);
    }
    // Only published streams count: names viewers wait on must not keep a sharer out.
    if (!current && this.byPublisher.size >= MAX_STREAMS) {
      this.overLimit('streams', `relay carries ${MAX_STREAMS} streams already; refusing ${name}`);
      return this.refuse(name, RefuseReason.Full, from, now);
    }
    if (!stream) {
      stream = newStream(name);
      this.streams.set(name, stream);
    }
    if (!current) this.log(`stream ${name}: publisher ${fmt(from)} (ssrc ${hex(ssrc)})`);
    else if (current.ssrc !== ssrc) this.log(`stream ${name}: publisher restarted (ssrc ${hex(ssrc)})`);
    if (current?.ssrc !== ssrc) forget(stream);
    stream.publisher = { endpoint: from, key, ssrc, since: current?.since ?? now, lastSeen: now };
    if (auth && auth !== 'latched') {
      stream.auth = auth.keys;
      stream.guard = auth.guard;
    }
    if (!current) stream.salt = msg.salt ? Buffer.from(msg.salt) : undefined;
    this.byPublisher.set(key, stream);
    return this.ack(name, true, from, stream.salt);
  }

  /** ACK: smaller than any PUBLISH or SUBSCRIBE it answers, so the relay never amplifies. */
  private ack(name: string, live: boolean, to: Endpoint, salt?: Buffer): Output {
    const data = serializeRtcp([controlApp({ kind: ControlType.Ack, stream: name, live, salt }, RELAY_SSRC)]);
    this.counters.packetsOut++;
    this.counters.bytesOut += data.length;
    return { data, to: [to] };
  }

  /**
   * A SUBSCRIBE: a known viewer's keepalive is answered with an ACK (within its rate); an unknown
   * address must first prove it receives at the address it claims, by echoing a cookie (CHALLENGE).
   * Nothing is stored for a peer until it has.
   */
  private subscribe(msg: ControlMessage, requestBytes: number, from: Endpoint, key: string, now: number): Output | null {
    const name = msg.stream;
    let stream = this.streams.get(name);
    const existing = stream?.viewers.get(key);
    if (existing) {
      existing.keepaliveTokens = Math.min(KEEPALIVE_BURST, existing.keepaliveTokens + ((now - existing.lastSeen) * KEEPALIVES_PER_SECOND) / 1000);
      existing.lastSeen = now;
      if (existing.keepaliveTokens < 1) {
        this.counters.rateLimited++;
        return null;
      }
      existing.keepaliveTokens--;
    } else if (!this.cookies.verify(from, msg.cookie)) {
      return this.challenge(name, requestBytes, from, key, now);
    } else if (this.watchKey && !(msg.proof && verifyWatchProof(this.watchKey, msg.cookie!, Buffer.from(name, 'utf8'), msg.proof))) {
      // The address is proven (the cookie), so a REFUSED to it amplifies nothing.
      this.counters.authFailures++;
      return this.refuse(name, RefuseReason.BadKey, from, now);
    } else {
      if (!stream) {
        // A name nobody publishes yet: bounded apart from the published streams (byPublisher).
        if (this.streams.size - this.byPublisher.size >= MAX_STREAMS) {
          this.overLimit('awaited', `viewers wait on ${MAX_STREAMS} unpublished stream names already; refusing a viewer of ${name}`);
          return null;
        }
        stream = newStream(name);
        this.streams.set(name, stream);
      }
      if (stream.viewers.size >= MAX_VIEWERS_PER_STREAM || this.viewerCount >= MAX_VIEWERS) {
        this.overLimit('viewers', `viewer limit reached (${MAX_VIEWERS_PER_STREAM} a stream, ${MAX_VIEWERS} in all)`);
        return null;
      }
      const v: ViewerState = {
        endpoint: from,
        key,
        since: now,
        lastSeen: now,
        joinedAtFanOut: stream.fanOuts,
        sendErrors: 0,
        rtxTokens: RTX_MAX_PER_SECOND,
        rtxRefilled: now,
        retransmissions: 0,
        keepaliveTokens: KEEPALIVE_BURST,
      };
      stream.viewers.set(key, v);
      this.viewerCount++;
      if (stream.cache?.length) {
        // Instant start: the SR (clock mapping) and everything since the last keyframe, paced.
        v.catchUp = { stream, queue: stream.lastSr ? [stream.lastSr, ...stream.cache] : [...stream.cache], head: 0, credit: JOIN_BURST_BYTES, lastPump: now };
        this.catchingUp.add(v);
        this.counters.cacheJoins++;
      } else {
        stream.targets = [...stream.targets, from];
      }
      this.log(`stream ${name}: viewer ${fmt(from)} joined (${stream.viewers.size} watching${stream.publisher ? '' : ', no sharer yet'})`);
    }
    return this.ack(name, !!stream!.publisher, from, stream!.publisher ? stream!.salt : undefined);
  }

  /**
   * A datagram that did not parse as RTCP from an address that is not a keyed publisher: if it is
   * a PUBLISH followed by an auth trailer, verify it with the keys of the salt it announces and
   * latch the sharer; a relay without --key says so instead of leaving the sharer guessing.
   */
  private signedPublish(buf: Buffer, from: Endpoint, key: string, now: number): Output[] {
    let msg: ControlMessage | undefined;
    try {
      if (buf.length > AUTH_TRAILER_BYTES) {
        for (const p of parseRtcp(buf.subarray(0, buf.length - AUTH_TRAILER_BYTES))) {
          const m = p.type === 'app' ? parseControl(p) : null;
          if (m?.kind === ControlType.Publish && m.salt) msg = m;
        }
      }
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
    }
    if (!msg) {
      this.counters.malformed++;
      return [];
    }
    if (!this.master) {
      const r = this.refuse(msg.stream, RefuseReason.RelayHasNoKey, from, now);
      return r ? [r] : [];
    }
    const keys = streamKeys(this.master, msg.salt!).auth;
    const guard = new ReplayGuard();
    const v = verifyAuthTag(buf, keys, guard);
    if (!v.ok) {
      this.counters.authFailures++;
      const r = this.refuse(msg.stream, RefuseReason.BadKey, from, now);
      return r ? [r] : [];
    }
    return this.onRtcp(v.packet, from, key, now, { keys, guard, salt: msg.salt! });
  }

  /** REFUSED: tells a sharer why, in fewer bytes than its PUBLISH, within the unproven rate. */
  private refuse(name: string, reason: RefuseReason, from: Endpoint, now: number): Output | null {
    const why = ['', 'the stream is taken', 'the relay is full', 'wrong or missing key', 'this relay has no --key'][reason] ?? `reason ${reason}`;
    this.logOnce(`refuse ${reason} ${endpointKey(from)} ${name}`, `stream ${name}: refused ${fmt(from)} (${why})`);
    if (!this.unproven.take(endpointKey(from), now)) {
      this.counters.rateLimited++;
      return null;
    }
    const data = serializeRtcp([controlApp({ kind: ControlType.Refused, stream: name, reason }, RELAY_SSRC)]);
    this.counters.packetsOut++;
    this.counters.bytesOut += data.length;
    return { data, to: [from] };
  }

  /** CHALLENGE: a cookie for this address, no larger than the request, within the unproven rate. */
  private challenge(name: string, requestBytes: number, from: Endpoint, key: string, now: number): Output | null {
    if (!this.unproven.take(key, now)) {
      this.counters.rateLimited++;
      return null;
    }
    const data = serializeRtcp([controlApp({ kind: ControlType.Challenge, stream: name, cookie: this.cookies.issue(from) }, RELAY_SSRC)]);
    if (data.length > requestBytes) {
      // Never more bytes to an unproven address than it sent (a SUBSCRIBE without its cookie field).
      this.counters.malformed++;
      return null;
    }
    this.counters.challenges++;
    this.counters.packetsOut++;
    this.counters.bytesOut += data.length;
    return { data, to: [from] };
  }

  /** Keeps a media packet for retransmission and in the keyframe cache. */
  private remember(stream: StreamState, buf: Buffer): void {
    const seq = buf.readUInt16BE(2);
    stream.history[seq % RTX_HISTORY_PACKETS] = buf;
    const timestamp = buf.readUInt32BE(4);
    const frameStart = timestamp !== stream.lastTimestamp;
    stream.lastTimestamp = timestamp;
    // A malformed frame-info element is no frame info: the payload still says whether it is a keyframe.
    if (frameStart && (unlessMalformed(() => readFrameInfo(buf), undefined)?.keyframeStart ?? startsKeyframe(buf))) {
      stream.cache = [buf];
      stream.cacheBytes = buf.length;
    } else if (stream.cache) {
      stream.cacheBytes += buf.length;
      if (stream.cacheBytes > KEYFRAME_CACHE_BYTES) {
        stream.cache = undefined; // too big to replay; none until the next keyframe
        stream.cacheBytes = 0;
      } else {
        stream.cache.push(buf);
      }
    }
  }

  /** Answers a viewer's NACK from history, within its retransmission budget. */
  private retransmit(stream: StreamState, v: ViewerState, lost: number[], now: number): Output[] {
    v.rtxTokens = Math.min(RTX_MAX_PER_SECOND, v.rtxTokens + ((now - v.rtxRefilled) * RTX_MAX_PER_SECOND) / 1000);
    v.rtxRefilled = now;
    const out: Output[] = [];
    for (const seq of lost) {
      const buf = stream.history[seq % RTX_HISTORY_PACKETS];
      if (!buf || buf.readUInt16BE(2) !== seq || v.rtxTokens < 1) {
        this.counters.rtxMisses++;
        continue;
      }
      v.rtxTokens--;
      v.retransmissions++;
      this.counters.retransmissions++;
      this.counters.packetsOut++;
      this.counters.bytesOut += buf.length;
      out.push({ data: buf, to: [v.endpoint] });
    }
    return out;
  }

  /** Ends a viewer's catch-up: it joins the live targets; returns whatever was still queued for it. */
  private goLive(stream: StreamState, v: ViewerState): Output[] {
    this.catchingUp.delete(v);
    const rest = v.catchUp ? v.catchUp.queue.slice(v.catchUp.head) : [];
    v.catchUp = undefined;
    stream.targets = [...stream.targets, v.endpoint];
    for (const data of rest) {
      this.counters.packetsOut++;
      this.counters.bytesOut += data.length;
    }
    return rest.map((data) => ({ data, to: [v.endpoint] }));
  }

  private fanOut(stream: StreamState, buf: Buffer): Output[] {
    const targets = stream.targets; // before any catch-up ends below, which would add to it
    const out: Output[] = [];
    for (const v of this.catchingUp) {
      const c = v.catchUp!;
      if (c.stream !== stream) continue;
      c.queue.push(buf);
      if (c.queue.length - c.head > CATCHUP_MAX_PACKETS) {
        // Cannot catch up at this pace: it goes live now, with the rest of its queue in one go.
        out.push(...this.goLive(stream, v));
      }
    }
    const n = targets.length;
    if (n === 0) return out;
    stream.fanOuts++;
    stream.packetsOut += n;
    stream.bytesOut += n * buf.length;
    this.counters.packetsOut += n;
    this.counters.bytesOut += n * buf.length;
    out.push({ data: buf, to: targets });
    return out;
  }

  private endStream(stream: StreamState, notify = true): Output[] {
    const pub = stream.publisher;
    if (pub) this.byPublisher.delete(pub.key);
    stream.publisher = undefined;
    stream.auth = undefined;
    stream.guard = undefined;
    stream.salt = undefined;
    if (!notify || stream.targets.length === 0) return [];
    const ended = serializeRtcp([controlApp({ kind: ControlType.Ended, stream: stream.name }, RELAY_SSRC)]);
    return this.fanOut(stream, ended);
  }

  private removeViewer(stream: StreamState, key: string): void {
    const v = stream.viewers.get(key);
    if (!v) return;
    stream.viewers.delete(key);
    this.catchingUp.delete(v);
    stream.targets = stream.targets.filter((e) => e !== v.endpoint);
    this.viewerCount--;
    this.log(`stream ${stream.name}: viewer ${fmt(v.endpoint)} left (${stream.viewers.size} watching)`);
  }

  /** Logs `line` the first time `key` is seen (bounded: a flood of forged addresses logs once per 1000). */
  private logOnce(key: string, line: string): void {
    if (this.warned.has(key)) return;
    if (this.warned.size >= MAX_WARNED) {
      this.warned.clear();
      this.log('(further refusals are counted, not logged one by one)');
    }
    this.warned.add(key);
    this.log(line);
  }

  private overLimit(kind: string, line: string): void {
    this.counters.overLimit++;
    if (!this.warned.has(kind)) {
      this.warned.add(kind);
      this.log(line);
    }
  }

  private log(line: string): void {
    this.onLog?.(line);
  }
}

function newStream(name: string): StreamState {
  return {
    name,
    viewers: new Map(),
    targets: [],
    packetsIn: 0,
    bytesIn: 0,
    packetsOut: 0,
    bytesOut: 0,
    fanOuts: 0,
    dropped: 0,
    srForwarded: new Map(),
    history: new Array(RTX_HISTORY_PACKETS),
    cacheBytes: 0,
  };
}

/** A new publisher session: nothing of the old one may be replayed or retransmitted. */
function forget(stream: StreamState): void {
  stream.history = new Array(RTX_HISTORY_PACKETS);
  stream.cache = undefined;
  stream.cacheBytes = 0;
  stream.lastSr = undefined;
  stream.lastTimestamp = undefined;
}



export function fmt(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/**
 * One track of a browser's peer connection, sent the way werift's RTCRtpSender would, without its
 * per-packet path: the relay's packet is not parsed again into werift's objects (3.8 µs a packet
 * measured), no NTP time is formatted per packet, and the packet is encrypted by srtp.ts (the
 * header written once; for AES-CM a kept AES context instead of a new one per packet) and handed
 * to the kernel by the relay's native helper (one sendmmsg(2), header, payload and tag gathered)
 * or else dgram, on the socket of the ICE pair in use, rather than through five nested async
 * functions. What the sender's RTCP needs is kept on the sender itself (its packet and octet
 * counts), so werift still sends the sender reports and reads the receiver reports (the round trip).
 *
 * The sender reports say what the sharer's said: the instant each track's RTP time was captured,
 * on the sharer's clock (RFC 3550 §6.4.1), which the browser lines sound and picture up by. werift
 * would pair the time it sent the last packet with that packet's capture time (the picture's
 * encoding delay is not the sound's), and it writes the NTP fraction as the decimal digits of the
 * seconds, so its times are right only to the second.
 *
 * Header extensions, as negotiated: the MID (RFC 8843 §15) and the transport-wide sequence number
 * (one counter for every track of the transport, as werift keeps it), on new packets; a repair
 * carries neither number (its first copy was the one reported on).
 */
import type { RTCRtpSender } from 'werift';
import type * as Werift from 'werift';
import type dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { checkedRtpHeaderLength, rtpMarker, rtpSequence, rtpTimestamp } from '../../rtp/packet.ts';
import { msToNtp, ntpToMs } from '../../transport/ntp.ts';
import { fdReader, type NativeHelper } from '../io/native.ts';
import { GCM_TAG_BYTES, HMAC_TAG_BYTES, SrtpCtrSender, SrtpGcmSender, type SrtpSender } from './srtp.ts';

/** What werift keeps on a sender, private in its types. */
interface SenderState {
  headerExtensions: Array<{ uri: string; id: number }>;
  packetCount: number;
  octetCount: number;
  sequenceNumber?: number;
  timestamp?: number;
  runRtcp(): Promise<void>;
}

/** The ICE pair in use, as werift's Connection keeps it. */
interface IcePair {
  remoteAddr: [string, number];
  protocol: { transport?: { socket?: dgram.Socket } };
}

/** werift's ICE connection, as the wire uses it. */
interface IceConnection {
  nominated?: IcePair;
  canSendApplicationData(): boolean;
  send(b: Buffer): Promise<void>;
}

/** The ICE pair's socket and address, for the native helper: the descriptor and the packed address. */
interface NativePath {
  pair: IcePair;
  fd: number;
  /** The socket's descriptor as it is now (undefined once it closed). */
  fdNow: () => number | undefined;
  address: Buffer;
}

/**
 * A browser's transport on the wire: the socket of its ICE pair in use. With the native helper,
 * the packets of one turn of the relay's loop (a batch it read: a frame's packets, the sound that
 * came with them) wait here until the turn's end (`schedule`: the caller flushes every waiting
 * wire then, in a microtask) and leave by one sendmmsg(2): a system call is the largest cost of a
 * packet on a virtual machine (a third of the relay's time with 50 browsers, one call a packet).
 * Otherwise, or when the kernel will not take them all, dgram sends them, and what follows goes
 * behind them through dgram until it has sent them, so order is kept.
 */
export class BrowserWire {
  private readonly queue: Buffer[][] = [];
  private path?: NativePath | null;
  /** Datagrams handed to dgram whose callback has not run. */
  private inDgram = 0;

  constructor(
    /** The relay's native helper, when its own datagrams go through it (not --no-native). */
    private readonly native: NativeHelper | undefined,
    private readonly onError: () => void,
    private readonly schedule: (wire: BrowserWire) => void,
  ) {}

  send(connection: IceConnection, enc: Buffer[]): void {
    const pair = connection.nominated;
    const socket = pair?.protocol.transport?.socket;
    if (!pair || !socket) {
      connection.send(Buffer.concat(enc)).catch(() => this.onError());
      return;
    }
    if (this.path === undefined || (this.path && this.path.pair !== pair)) {
      this.flush();
      this.path = this.nativePath(pair, socket);
    }
    if (this.path && this.inDgram === 0) {
      this.queue.push(enc);
      if (this.queue.length === 1) this.schedule(this);
      return;
    }
    this.byDgram(socket, pair, enc);
  }

  /** Sends what waits. */
  flush(): void {
    const path = this.path;
    if (!path || this.queue.length === 0) return;
    const socket = path.pair.protocol.transport!.socket!;
    if (path.fdNow() !== path.fd) {
      // The peer connection closed its socket since (the browser left): the descriptor may be
      // another socket's by now.
      this.queue.length = 0;
      this.onError();
      return;
    }
    const sent = this.native!.sendEach!(path.fd, this.queue, path.address, 0);
    for (let i = Math.max(0, sent); i < this.queue.length; i++) this.byDgram(socket, path.pair, this.queue[i]);
    this.queue.length = 0;
  }

  private byDgram(socket: dgram.Socket, pair: IcePair, enc: Buffer[]): void {
    try {
      socket.send(enc, pair.remoteAddr[1], pair.remoteAddr[0], (err) => {
        this.inDgram--;
        if (err) this.onError();
      });
      this.inDgram++;
    } catch {
      this.onError(); // the peer connection closed its socket: the browser is leaving
    }
  }

  private nativePath(pair: IcePair, socket: dgram.Socket): NativePath | null {
    if (!this.native?.sendEach) return null;
    const fdNow = fdReader(socket);
    const fd = fdNow?.();
    let address: Buffer | undefined;
    try {
      address = this.native.packAddress(pair.remoteAddr[0], pair.remoteAddr[1]);
    } catch {
      address = undefined;
    }
    return fdNow && fd !== undefined && address ? { pair, fd, fdNow, address } : null;
  }
}

export class BrowserTrack {
  private readonly state: SenderState;
  private readonly mid?: { id: number; payload: Buffer };
  private readonly twccId?: number;
  private reported = false;
  /** The sharer's latest report for this track (its NTP time in ms), and when it came (performance.now()). */
  private sharerReport?: { ntpMs: number; rtp: number; at: number };
  private stamped?: { at: number; ntp: bigint; rtp: number };
  /** Our own SRTP (srtp.ts) for the peer connection's session, by the profile the handshake chose; null: werift's. */
  private srtp?: { session: object; sender: SrtpSender | null };

  constructor(
    private readonly w: typeof Werift,
    readonly sender: RTCRtpSender,
    /** The browser's one transport, which both its tracks send on. */
    private readonly wire: BrowserWire,
  ) {
    this.state = sender as unknown as SenderState;
    // One-byte header extensions (RFC 8285 §4.2) hold ids 1-14: one negotiated outside that is left out.
    const ext = (uri: string) => {
      const id = this.state.headerExtensions?.find((e) => e.uri === uri)?.id;
      return id !== undefined && id >= 1 && id <= 14 ? id : undefined;
    };
    const midId = ext(w.RTP_EXTENSION_URI.sdesMid);
    const mid = (sender as unknown as { mid?: string }).mid;
    if (midId !== undefined && mid) this.mid = { id: midId, payload: Buffer.from(mid) };
    this.twccId = ext(w.RTP_EXTENSION_URI.transportWideCC);
  }

  /**
   * Sends `pkt` (the relay's RTP, shaped for this browser) under the track's SSRC and payload
   * type. `fresh`: a new packet, counted and numbered; else a repair. Returns the transport-wide
   * number given to it, if any.
   */
  send(pkt: Buffer, fresh: boolean): number | undefined {
    const s = this.sender;
    const transport = s.dtlsTransport;
    if (transport.state !== 'connected' || !s.codec) return undefined;
    const connection = transport.iceTransport.connection as unknown as IceConnection;
    if (!connection.canSendApplicationData()) return undefined;
    // The relay's packet read where it lies (parseRtp's object per packet and browser was measurable).
    let start: number;
    try {
      start = checkedRtpHeaderLength(pkt);
    } catch {
      return undefined; // the relay checked it on the way in; nothing to send if not
    }
    let end = pkt.length;
    if (pkt[0] & 0x20) {
      const pad = pkt[end - 1]; // RFC 3550 §5.1: the last byte counts the padding, itself included
      if (pad === 0 || pad > end - start) return undefined;
      end -= pad;
    }
    const p = { marker: rtpMarker(pkt), sequenceNumber: rtpSequence(pkt), timestamp: rtpTimestamp(pkt), payload: pkt.subarray(start, end) };
    const extensions: Array<{ id: number; payload: Buffer }> = [];
    let tw: number | undefined;
    if (fresh) {
      if (this.mid) extensions.push(this.mid);
      if (this.twccId !== undefined) {
        tw = transport.transportSequenceNumber = (transport.transportSequenceNumber + 1) & 0xffff;
        const b = Buffer.allocUnsafe(2);
        b.writeUInt16BE(tw);
        extensions.push({ id: this.twccId, payload: b });
      }
    }
    const out = { marker: p.marker, payloadType: s.codec.payloadType, sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, ssrc: s.ssrc, extensions, payload: p.payload };
    const own = this.srtpSender(transport.srtp);
    const enc = own ? own.protect(out, fresh) : [transport.srtp.encrypt(p.payload, new this.w.RtpHeader(out))];
    if (fresh) {
      const st = this.state;
      st.packetCount = (st.packetCount + 1) >>> 0;
      st.octetCount = (st.octetCount + p.payload.length) >>> 0;
      st.sequenceNumber = p.sequenceNumber;
      st.timestamp = p.timestamp;
    }
    for (const b of enc) transport.bytesSent += b.length;
    transport.packetsSent++;
    this.wire.send(connection, enc);
    return tw;
  }

  /** Our sender for werift's SRTP session `session`, by its profile's session keys; null for a profile we do not write (werift's then). */
  private srtpSender(session: object): SrtpSender | null {
    if (this.srtp?.session !== session) {
      type Keys = { aeadAuthTagLen?: number; authTagLength?: number; srtpSessionKey?: Buffer; srtpSessionSalt?: Buffer; srtpSessionAuthTag?: Buffer };
      const c = (session as { localContext?: { cipher?: Keys } }).localContext?.cipher;
      let sender: SrtpSender | null = null;
      if (c?.srtpSessionKey?.length === 16) {
        if (c.aeadAuthTagLen === GCM_TAG_BYTES && c.srtpSessionSalt?.length === 12) sender = new SrtpGcmSender(c.srtpSessionKey, c.srtpSessionSalt);
        else if (c.authTagLength === HMAC_TAG_BYTES && c.srtpSessionSalt?.length === 14 && c.srtpSessionAuthTag?.length === 20) sender = new SrtpCtrSender(c.srtpSessionKey, c.srtpSessionSalt, c.srtpSessionAuthTag);
      }
      this.srtp = { session, sender };
    }
    return this.srtp.sender;
  }

  /**
   * The sharer's sender report for this track: its NTP time and the RTP time captured then (RTP
   * times reach the browser unchanged). werift's sender reports say it from now on; the first
   * starts them.
   */
  report(ntpSec: number, ntpFrac: number, rtpTimestamp: number): void {
    this.sharerReport = { ntpMs: ntpToMs(ntpSec, ntpFrac), rtp: rtpTimestamp >>> 0, at: performance.now() };
    this.stamped = undefined;
    if (!this.reported) {
      this.reported = true;
      // werift reads the pair when it makes each report: what the sharer said, carried forward to
      // that moment (RFC 3550 §6.4.1: the NTP time is when the report is sent, the RTP time the
      // same instant on the media clock). Repeating the sharer's own pair would send one NTP time
      // in two reports, and a receiver report answering the first would be read against the
      // second (a round trip short by the time between them, even below zero).
      Object.defineProperty(this.sender, 'ntpTimestamp', { configurable: true, get: () => this.stamp().ntp, set: () => undefined });
      Object.defineProperty(this.sender, 'rtpTimestamp', { configurable: true, get: () => this.stamp().rtp, set: () => undefined });
      this.state.runRtcp().catch(() => undefined);
    }
  }

  /**
   * The sharer's pair carried forward to now, the same for STAMP_HOLD_MS (werift reads it twice
   * for one report: into the report, then to remember it for the round trip).
   */
  private stamp(): { ntp: bigint; rtp: number } {
    const now = performance.now();
    const r = this.sharerReport!;
    if (!this.stamped || now - this.stamped.at > STAMP_HOLD_MS) {
      const elapsed = now - r.at;
      const { sec, frac } = msToNtp(r.ntpMs + elapsed);
      const rate = this.sender.codec?.clockRate ?? 90_000;
      this.stamped = { at: now, ntp: (BigInt(sec >>> 0) << 32n) | BigInt(frac >>> 0), rtp: (r.rtp + Math.round((elapsed * rate) / 1000)) >>> 0 };
    }
    return this.stamped;
  }
}

/** How long one carried-forward sender report pair is kept: far less than werift's 0.5-1.5 s between reports. */
const STAMP_HOLD_MS = 50;

/**
 * One track of a browser's peer connection, sent to the way werift's RTCRtpSender would, without
 * its per-packet path: the relay's packet is not parsed again into werift's objects (3.8 µs a
 * packet measured), no NTP time is formatted per packet, and the encrypted packet goes straight to
 * the socket of the ICE pair in use rather than through five nested async functions. What the
 * sender's RTCP needs is kept on the sender itself (its packet and octet counts), so werift still
 * sends the sender reports and reads the receiver reports (the round trip) as before.
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
import { parseRtp } from '../../rtp/packet.ts';

/** What werift keeps on a sender, private in its types. */
interface SenderState {
  headerExtensions: Array<{ uri: string; id: number }>;
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  sequenceNumber?: number;
  timestamp?: number;
  runRtcp(): Promise<void>;
}

/** The ICE pair in use, as werift's Connection keeps it. */
interface IcePair {
  remoteAddr: [string, number];
  protocol: { transport?: { socket?: { send(buf: Buffer, port: number, host: string, cb: (err: Error | null) => void): void } } };
}

export class BrowserTrack {
  private readonly state: SenderState;
  private readonly mid?: { id: number; payload: Buffer };
  private readonly twccId?: number;
  private reported = false;

  constructor(
    private readonly w: typeof Werift,
    readonly sender: RTCRtpSender,
    private readonly onError: () => void,
  ) {
    this.state = sender as unknown as SenderState;
    const ext = (uri: string) => this.state.headerExtensions?.find((e) => e.uri === uri)?.id;
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
    const connection = transport.iceTransport.connection as unknown as { nominated?: IcePair; canSendApplicationData(): boolean; send(b: Buffer): Promise<void> };
    if (!connection.canSendApplicationData()) return undefined;
    let p;
    try {
      p = parseRtp(pkt);
    } catch {
      return undefined; // the relay checked it on the way in; nothing to send if not
    }
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
    const header = new this.w.RtpHeader({ marker: p.marker, payloadType: s.codec.payloadType, sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, ssrc: s.ssrc, extensions });
    const enc = transport.srtp.encrypt(p.payload, header);
    if (fresh) {
      const st = this.state;
      st.packetCount = (st.packetCount + 1) >>> 0;
      st.octetCount = (st.octetCount + p.payload.length) >>> 0;
      st.sequenceNumber = p.sequenceNumber;
      st.timestamp = p.timestamp;
    }
    transport.bytesSent += enc.length;
    transport.packetsSent++;
    const pair = connection.nominated;
    const socket = pair?.protocol.transport?.socket;
    if (pair && socket) socket.send(enc, pair.remoteAddr[1], pair.remoteAddr[0], (err) => err && this.onError());
    else connection.send(enc).catch(() => this.onError());
    return tw;
  }

  /**
   * The sharer's sender report for this track: its NTP time and the RTP time captured then (RTP
   * times reach the browser unchanged). werift's sender reports say it from now on; the first
   * starts them.
   */
  report(ntpSec: number, ntpFrac: number, rtpTimestamp: number): void {
    this.state.ntpTimestamp = (BigInt(ntpSec >>> 0) << 32n) | BigInt(ntpFrac >>> 0);
    this.state.rtpTimestamp = rtpTimestamp >>> 0;
    if (!this.reported) {
      this.reported = true;
      this.state.runRtcp().catch(() => undefined);
    }
  }
}

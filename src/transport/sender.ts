/**
 * Numbers the packets of one RTP source: SSRC, sequence numbers and payload type, shared by every
 * payload format. Turns a frame's payloads into datagrams ready for `dgram.send` as lists of
 * buffers (header first, payload chunks as views), with the marker bit on the frame's last packet.
 */
import { randomBytes } from 'node:crypto';
import type { Payload } from '../rtp/frame.ts';
import { serializeRtp } from '../rtp/packet.ts';
import { seqAdd } from '../rtp/seq.ts';

export interface RtpSenderOptions {
  payloadType: number;
  /** Random when not given, as RFC 3550 §8.1 asks. */
  ssrc?: number;
  /** Random when not given (RFC 3550 §5.1), so a known-plaintext attack has less to go on. */
  initialSequence?: number;
}

export class RtpSender {
  readonly ssrc: number;
  readonly payloadType: number;
  private seq: number;
  /** Packets and payload octets sent, for RTCP SR (RFC 3550 §6.4.1). */
  packetCount = 0;
  octetCount = 0;
  /** The last frame's RTP timestamp, for SR's NTP ↔ RTP mapping. */
  lastTimestamp = 0;

  constructor(opts: RtpSenderOptions) {
    this.payloadType = opts.payloadType;
    this.ssrc = opts.ssrc ?? randomBytes(4).readUInt32BE(0);
    this.seq = opts.initialSequence ?? randomBytes(2).readUInt16BE(0);
  }

  /** The sequence number the next packet will carry. */
  get nextSequence(): number {
    return this.seq;
  }

  /**
   * One datagram per payload; the last carries the marker bit unless `marker` is false (Opus,
   * RFC 7587 §4.1: the bit marks only the first packet after a silence sent as DTX).
   */
  frame(payloads: Payload[], timestamp: number, marker = true): Buffer[][] {
    const out: Buffer[][] = [];
    for (let i = 0; i < payloads.length; i++) {
      const payload = payloads[i];
      out.push(
        serializeRtp({
          padding: 0,
          marker: marker && i === payloads.length - 1,
          payloadType: this.payloadType,
          sequenceNumber: this.seq,
          timestamp,
          ssrc: this.ssrc,
          csrc: [],
          payload,
        }),
      );
      this.seq = seqAdd(this.seq, 1);
      this.packetCount++;
      for (const c of payload) this.octetCount += c.length;
    }
    this.lastTimestamp = timestamp >>> 0;
    return out;
  }
}

/**
 * What the payload formats exchange with the rest of udpcast: one encoded frame in, RTP payloads
 * out, and back. Each codec's payload format (src/codecs/NAME/) implements these.
 */
import type { RtpPacket } from './packet.ts';

/** One complete encoded frame: an H.264 access unit in Annex B, or one baseline JFIF image. */
export interface Frame {
  /** RTP timestamp (90 kHz) shared by every packet of the frame. */
  timestamp: number;
  data: Buffer;
  /** An H.264 IDR access unit, or any JPEG (every JPEG is decodable on its own). */
  keyframe: boolean;
}

/** One RTP payload as a list of chunks, so a payload can be a header plus a view (no copy). */
export type Payload = Buffer[];

export interface DepacketizerCounters {
  /** Frames handed out whole. */
  framesComplete: number;
  /** Frames abandoned: a gap, a fragment without its start, a cap exceeded, a malformed payload. */
  framesDropped: number;
  /** Packets discarded because they belonged to a dropped frame or could not be used. */
  packetsDiscarded: number;
}

export interface Depacketizer {
  /**
   * Feeds one RTP packet, in arrival order. Returns a complete frame when this packet completed
   * one, or null when more packets are needed (or the frame was dropped: see `counters`).
   * Never throws on bad payloads: they are counted and the partial frame is discarded.
   */
  push(packet: RtpPacket): Frame | null;
  /**
   * Like push, but returns every frame the packet completed: one packet can close a frame that
   * lacked its marker and complete the next (H.264). Prefer this in receive loops.
   */
  pushAll(packet: RtpPacket): Frame[];
  /** Forgets any partial frame (a new SSRC, a seek, a publisher restart). */
  reset(): void;
  readonly counters: DepacketizerCounters;
  /** Called once per dropped frame with a one-line reason, for logs. */
  onDrop?: (reason: string) => void;
}

/**
 * What a container writer takes and gives: whole frames (and, with a sound track, Opus packets)
 * in, bytes out. Matroska (mkv.ts) feeds the live player and `.mkv` recordings; fragmented MP4
 * (mp4.ts) makes `.mp4` recordings. Both write as they go (no seeking back), so a killed watch
 * still leaves a playable file, and both can write to a pipe.
 */
import type { CodecName } from '../codecs/registry.ts';

export type ContainerCodec = CodecName;

export interface ContainerFrame {
  codec: ContainerCodec;
  /** An H.264 access unit in Annex B, or one JPEG. */
  data: Buffer;
  keyframe: boolean;
  /**
   * Presentation time in 90 kHz ticks (the RTP video clock, unwrapped), never decreasing. The
   * writer makes the first frame's time zero.
   */
  pts: number;
}

/** One Opus packet (RFC 6716 §3, as RFC 7587 carries it) for a writer's sound track. */
export interface ContainerAudio {
  data: Buffer;
  /**
   * Time on the frames' timeline (90 kHz ticks, like ContainerFrame.pts before the writer makes
   * the first frame zero) of the packet's first sample as the decoder gives it, pre-skip included.
   */
  pts: number;
}

/** What a writer is made with besides the picture: an Opus track and its OpusHead (RFC 7845 §5.1). */
export interface ContainerTracks {
  audio?: { head: Buffer };
}

export interface ContainerWriter {
  /**
   * The bytes to write for one frame, the file's header first when it is the first. A file can
   * only start at a keyframe: frames before the first keyframe give no bytes.
   */
  write(frame: ContainerFrame): Buffer[];
  /**
   * The bytes for one Opus packet, when the writer was made with a sound track (none before the
   * file's first picture; each writer counts what it drops).
   */
  writeAudio?(packet: ContainerAudio): Buffer[];
  /** The bytes that end the file, if the format has any (after the last write). */
  end(): Buffer[];
}

/** 90 kHz ticks in one millisecond. */
export const TICKS_PER_MS = 90;

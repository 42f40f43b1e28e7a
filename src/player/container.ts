/**
 * What a container writer takes and gives: whole frames in, bytes out. Matroska (mkv.ts) feeds
 * the live player and `.mkv` recordings; fragmented MP4 (mp4.ts) makes `.mp4` recordings. Both
 * write as they go (no seeking back), so a killed watch still leaves a playable file, and both can
 * write to a pipe.
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

export interface ContainerWriter {
  /**
   * The bytes to write for one frame, the file's header first when it is the first. A file can
   * only start at a keyframe: frames before the first keyframe give no bytes.
   */
  write(frame: ContainerFrame): Buffer[];
  /** The bytes that end the file, if the format has any (after the last write). */
  end(): Buffer[];
}

/** 90 kHz ticks in one millisecond. */
export const TICKS_PER_MS = 90;

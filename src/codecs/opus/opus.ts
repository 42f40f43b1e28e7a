/**
 * What udpcast knows of Opus packets and headers, wherever they come from: FFmpeg's Ogg output
 * (encode/ogg.ts), RTP (RFC 7587: one Opus packet per payload, a 48 kHz clock whatever the coded
 * bandwidth), a Matroska track (player/mkv.ts). The durations come from the TOC byte alone, so
 * nothing here decodes audio.
 *
 * ID header (RFC 7845 §5.1), little-endian:
 *
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |      'O'      |      'p'      |      'u'      |      's'      |
 *     |      'H'      |      'e'      |      'a'      |      'd'      |
 *     |  Version = 1  | Channel Count |           Pre-skip            |
 *     |                     Input Sample Rate (Hz)                    |
 *     |   Output Gain (Q7.8 in dB)    | Mapping Family|  (table ...)  :
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
import { PacketError, need } from '../../util/errors.ts';

/** Opus's RTP clock and the rate its durations count in (RFC 7587 §4.1). */
export const OPUS_RATE = 48000;

/** The fields of an ID header (RFC 7845 §5.1). */
export interface OpusHead {
  version: number;
  /** Output channel count C. */
  channels: number;
  /** 48 kHz samples to decode and discard at the start (RFC 7845 §4.2). */
  preSkip: number;
  /** The encoder's input rate in Hz, metadata only (0 = unspecified). */
  inputSampleRate: number;
  /** Q7.8 dB. */
  outputGain: number;
  mappingFamily: number;
  /** Opus streams N in each Ogg packet (1 for family 0). */
  streams: number;
  /** Of those, how many are stereo (C − 1 for family 0). */
  coupledStreams: number;
}

// RFC 7845 §5.1.
export const OPUS_HEAD_MAGIC = Buffer.from('OpusHead', 'latin1');
/** Magic, version, C, pre-skip, input rate, gain, family: the fields every ID header has. */
const OPUS_HEAD_MIN_SIZE = 19;
/** ...then for a family other than 0: stream count, coupled count, one mapping byte per channel. */
const OPUS_HEAD_TABLE_OFFSET = 19;
/** Versions 0-15 share the major version 0 (upper four bits): readable by this reader. */
const OPUS_HEAD_MAX_VERSION = 15;
/** Family 1 (Vorbis channel order) defines 1 to 8 channels; family 0 mono and stereo. */
const FAMILY_1_MAX_CHANNELS = 8;
/** A mapping byte of 255 means a silent output channel. */
const MAPPING_SILENT = 255;

// RFC 6716 §3.1-3.2.
/** An Opus packet holds at most 120 ms ([R5]). */
export const OPUS_MAX_PACKET_SAMPLES = 5760;
const TOC_CODE_MASK = 0x03;
const FRAME_COUNT_MASK = 0x3f;
/**
 * Frame duration in 48 kHz samples for each TOC config (RFC 6716 §3.1, Table 2): SILK-only NB, MB,
 * WB at 10/20/40/60 ms; Hybrid SWB, FB at 10/20 ms; CELT-only NB, WB, SWB, FB at 2.5/5/10/20 ms.
 */
const FRAME_SAMPLES: readonly number[] = [
  480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880,
  480, 960, 480, 960,
  120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960,
];

/**
 * Duration of an Opus packet in 48 kHz samples, from its TOC byte (RFC 6716 §3.1): frame size from
 * the config, frame count from the code (0: one, 1 and 2: two, 3: the count in the second byte).
 *
 * Checks what the duration needs, [R1] (at least one byte) and [R5] (code 3: 1 to 120 ms of frames),
 * not the frame lengths ([R2]-[R4], [R6], [R7]): in a multistream Ogg packet every Opus packet but
 * the last is self-delimited (RFC 6716 Appendix B), so those rules do not apply to the whole buffer,
 * while its first two bytes still read the same. The decoder checks the rest.
 */
export function opusPacketSamples(packet: Buffer): number {
  // RFC 7845 §3: an empty audio packet is to be treated as one with an illegal TOC.
  need('Opus packet TOC', packet.length, 1);
  const toc = packet[0];
  const frame = FRAME_SAMPLES[toc >> 3];
  const code = toc & TOC_CODE_MASK;
  if (code === 0) return frame;
  if (code !== 3) return 2 * frame;
  need('Opus code 3 packet frame count', packet.length, 2);
  const frames = packet[1] & FRAME_COUNT_MASK;
  if (frames === 0) throw new PacketError('Opus code 3 packet with a frame count of 0');
  if (frames * frame > OPUS_MAX_PACKET_SAMPLES) {
    throw new PacketError(`Opus code 3 packet of ${frames} × ${frame} samples exceeds 120 ms (${OPUS_MAX_PACKET_SAMPLES} samples)`);
  }
  return frames * frame;
}

/** RFC 7845 §5.1: the ID header's fields, after checking them. */
export function parseOpusHead(packet: Buffer): OpusHead {
  need('OpusHead', packet.length, OPUS_HEAD_MIN_SIZE);
  if (!packet.subarray(0, OPUS_HEAD_MAGIC.length).equals(OPUS_HEAD_MAGIC)) {
    throw new PacketError(`OpusHead: magic ${packet.subarray(0, 8).toString('hex')}, expected 4f70757348656164 ("OpusHead")`);
  }
  const version = packet[8];
  if (version > OPUS_HEAD_MAX_VERSION) throw new PacketError(`OpusHead: version ${version}, this reader knows 0-15`);
  const channels = packet[9];
  if (channels === 0) throw new PacketError('OpusHead: channel count 0');
  const head: OpusHead = {
    version,
    channels,
    preSkip: packet.readUInt16LE(10),
    inputSampleRate: packet.readUInt32LE(12),
    outputGain: packet.readInt16LE(16),
    mappingFamily: packet[18],
    streams: 1,
    coupledStreams: channels - 1,
  };
  if (head.mappingFamily === 0) {
    if (channels > 2) throw new PacketError(`OpusHead: ${channels} channels in mapping family 0, which allows 1 or 2`);
    return head;
  }
  if (head.mappingFamily === 1 && channels > FAMILY_1_MAX_CHANNELS) {
    throw new PacketError(`OpusHead: ${channels} channels in mapping family 1, which allows 1 to ${FAMILY_1_MAX_CHANNELS}`);
  }
  need('OpusHead channel mapping table', packet.length - OPUS_HEAD_TABLE_OFFSET, 2 + channels);
  head.streams = packet[OPUS_HEAD_TABLE_OFFSET];
  head.coupledStreams = packet[OPUS_HEAD_TABLE_OFFSET + 1];
  const decoded = head.streams + head.coupledStreams;
  if (head.streams === 0) throw new PacketError('OpusHead: stream count 0');
  if (head.coupledStreams > head.streams) {
    throw new PacketError(`OpusHead: ${head.coupledStreams} coupled streams of ${head.streams}`);
  }
  if (decoded > 255) throw new PacketError(`OpusHead: ${decoded} decoded channels, at most 255`);
  for (let i = 0; i < channels; i++) {
    const index = packet[OPUS_HEAD_TABLE_OFFSET + 2 + i];
    if (index >= decoded && index !== MAPPING_SILENT) {
      throw new PacketError(`OpusHead: channel ${i} maps to decoded channel ${index} of ${decoded}`);
    }
  }
  return head;
}

/**
 * An ID header for a stream received over RTP, which carries none (RFC 7587 §7: the receiver
 * knows Opus at 48 kHz, mono or stereo): what a container or decoder needs to start.
 */
export function opusHead(channels: 1 | 2, preSkip = 0): Buffer {
  const b = Buffer.alloc(OPUS_HEAD_MIN_SIZE);
  OPUS_HEAD_MAGIC.copy(b, 0);
  b[8] = 1; // version 1
  b[9] = channels;
  b.writeUInt16LE(preSkip, 10);
  b.writeUInt32LE(OPUS_RATE, 12);
  b.writeInt16LE(0, 16); // no gain
  b[18] = 0; // family 0: mono or stereo, no table
  return b;
}

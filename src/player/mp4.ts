/**
 * Fragmented MP4 for `.mp4` recordings: ISO/IEC 14496-12 (ISO BMFF), movie fragments (§8.8) laid
 * out as CMAF (ISO/IEC 23000-19) does, one video track. Written strictly forward: the output may
 * be a pipe, and a killed process leaves a file that plays up to its last whole fragment.
 *
 *     ftyp                       brands
 *     moov                       before the first frame; every duration 0 (unknown, fragmented)
 *       mvhd                     timescale 90000, the RTP video clock
 *       trak
 *         tkhd                   track 1, width x height
 *         mdia
 *           mdhd  hdlr 'vide'
 *           minf
 *             vmhd  dinf/dref/'url ' (media in this file)
 *             stbl  stsd: avc1 + avcC | jpeg; stts, stsc, stsz, stco empty: samples are in fragments
 *       mvex/trex                defaults for track 1 (none used: every trun states its samples)
 *     moof                       one per fragment
 *       mfhd                     sequence_number 1, 2, …
 *       traf
 *         tfhd                   track 1, default-base-is-moof (offsets count from the moof)
 *         tfdt                   baseMediaDecodeTime: the first sample's time; the first frame is 0
 *         trun                   data_offset, then per sample duration, size and flags
 *     mdat                       the fragment's samples
 *     moof mdat …
 *
 * Every box (§4.2) starts with its size, which counts the header, and a four-character type; a
 * FullBox adds a version and 24 bits of flags:
 *
 *     +-----------+-----------+---------+----------+---------------
 *     | size (32) | type (32) | version | flags    | fields, boxes …
 *     +-----------+-----------+---------+----------+---------------
 *                               8 bits    24 bits    (FullBox only)
 *
 * Fragments: one starts at every keyframe (so each begins with a sync sample and a player can
 * seek to it) and when `fragmentMs` of video is buffered. A fragment's last sample lasts until the
 * next frame, so its bytes are given out when that frame arrives (or at `end()`). The trade-off:
 * a process killed with SIGKILL loses the fragment being buffered, up to `fragmentMs` of video
 * (less when keyframes come more often); each fragment costs about 108 bytes of boxes. Real
 * timestamps are kept: a 2 s freeze is a 2 s sample.
 *
 * Where a kill may cut the file matters to FFmpeg (5.1): opening a seekable file it reads every
 * moof, and one cut short makes it refuse the whole file ("error reading header"); a cut in an
 * mdat only loses that fragment's frames from the cut on. So each fragment's moof and mdat header
 * come as one buffer, for the sink to write with one write() (a file's WriteStream does; to a pipe,
 * a write up to PIPE_BUF is atomic, and a moof is 100 + 12 bytes a frame).
 *
 * H.264 samples are length-prefixed (ISO/IEC 14496-15 §5.3.4.2) with the SPS and PPS left in
 * band, so a change of picture size mid-recording still decodes. MJPEG samples are the JPEGs; the
 * sample entry `jpeg` (QuickTime's Photo JPEG) is what FFmpeg's mov demuxer reads as MJPEG.
 */
import { MP4_FRAGMENT_MS, VIDEO_CLOCK_RATE } from '../defaults.ts';
import { codec, type CodecName } from '../codecs/registry.ts';
import { TICKS_PER_MS, type ContainerFrame, type ContainerWriter } from './container.ts';

/** The last sample's duration when there is no previous one to copy: 1/30 s at 90 kHz. */
export const LONE_FRAME_TICKS = 3000;
export const TRACK_ID = 1;

// §8.8.7.1 tfhd and §8.8.8.1 trun flags.
export const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
export const TRUN_DATA_OFFSET = 0x000001;
export const TRUN_SAMPLE_DURATION = 0x000100;
export const TRUN_SAMPLE_SIZE = 0x000200;
export const TRUN_SAMPLE_FLAGS = 0x000400;
/**
 * Sample flags (§8.8.3.1): reserved(4) is_leading(2) sample_depends_on(2)
 * sample_is_depended_on(2) sample_has_redundancy(2) padding(3) sample_is_non_sync_sample(1)
 * degradation_priority(16). A keyframe depends on no other sample (2); any other frame does (1)
 * and is not a sync sample.
 */
export const SAMPLE_FLAGS_SYNC = 0x02000000;
export const SAMPLE_FLAGS_NON_SYNC = 0x01010000;
/** tkhd flags (§8.3.2.3): track_enabled | track_in_movie. */
const TKHD_ENABLED_IN_MOVIE = 0x000003;
/** 'url ' flags (§8.7.2.3): the media data is in the same file. */
const URL_SELF_CONTAINED = 0x000001;
/** vmhd flags: 1, as §12.1.2.2 requires. */
const VMHD_FLAGS = 0x000001;
/** The identity matrix (§6.2.2), 16.16 and 2.30 fixed point. */
const UNITY_MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000];
/** Rate 1.0 (16.16), volume 1.0 (8.8) in mvhd. */
const RATE_ONE = 0x00010000;
const VOLUME_ONE = 0x0100;
/** 'und' (ISO 639-2) packed as three 5-bit letters minus 0x60 (§8.4.2.3). */
const LANGUAGE_UND = 0x55c4;
/** VisualSampleEntry (§12.1.3.2) templates: 72 dpi (16.16), colour with no alpha. */
const RESOLUTION_72_DPI = 0x00480000;
const DEPTH_COLOUR = 0x0018;
const MAX_UINT32 = 0xffffffff;

/** Big-endian 32-bit fields. */
function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v, 4 * i));
  return b;
}

/** Big-endian 16-bit fields. */
function u16(...values: number[]): Buffer {
  const b = Buffer.alloc(2 * values.length);
  values.forEach((v, i) => b.writeUInt16BE(v, 2 * i));
  return b;
}

/** A box (§4.2): 32-bit size, type, then the parts, copied once into one buffer. */
export function box(type: string, ...parts: Buffer[]): Buffer {
  const size = parts.reduce((s, p) => s + p.length, 8);
  return Buffer.concat([u32(size), Buffer.from(type, 'latin1'), ...parts], size);
}

/** A FullBox (§4.2): a box whose payload starts with version (8 bits) and flags (24 bits). */
export function fullBox(type: string, version: number, flags: number, ...parts: Buffer[]): Buffer {
  return box(type, u32(((version << 24) | flags) >>> 0), ...parts);
}

/** ftyp and moov: everything before the first fragment. */
function header(name: CodecName, width: number, height: number, config: { record: Buffer; box: string } | undefined): Buffer[] {
  const { mp4SampleEntry, mp4Brands } = codec(name).container;
  const brands = ['isom', 'iso5', 'iso6', 'mp41', ...mp4Brands];
  const ftyp = box('ftyp', Buffer.from('isom', 'latin1'), u32(0), Buffer.from(brands.join(''), 'latin1'));
  // VisualSampleEntry (§12.1.3.2) after SampleEntry's 6 reserved bytes and data_reference_index.
  const sampleEntry = box(
    mp4SampleEntry,
    Buffer.alloc(6), u16(1), // reserved, data_reference_index: the one dref entry
    Buffer.alloc(16), // pre_defined, reserved, pre_defined[3]
    u16(width, height),
    u32(RESOLUTION_72_DPI, RESOLUTION_72_DPI, 0), // horizresolution, vertresolution, reserved
    u16(1), // frame_count
    Buffer.alloc(32), // compressorname: empty Pascal string
    u16(DEPTH_COLOUR, 0xffff), // depth, pre_defined = -1
    ...(config ? [box(config.box, config.record)] : []),
  );
  const stbl = box(
    'stbl',
    fullBox('stsd', 0, 0, u32(1), sampleEntry),
    fullBox('stts', 0, 0, u32(0)),
    fullBox('stsc', 0, 0, u32(0)),
    fullBox('stsz', 0, 0, u32(0, 0)), // sample_size, sample_count
    fullBox('stco', 0, 0, u32(0)),
  );
  const minf = box(
    'minf',
    fullBox('vmhd', 0, VMHD_FLAGS, u16(0, 0, 0, 0)), // graphicsmode copy, opcolor
    box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, URL_SELF_CONTAINED))),
    stbl,
  );
  const mdia = box(
    'mdia',
    fullBox('mdhd', 0, 0, u32(0, 0, VIDEO_CLOCK_RATE, 0), u16(LANGUAGE_UND, 0)), // times, timescale, duration
    fullBox('hdlr', 0, 0, u32(0), Buffer.from('vide', 'latin1'), u32(0, 0, 0), Buffer.from('VideoHandler\0', 'latin1')),
    minf,
  );
  const tkhd = fullBox(
    'tkhd', 0, TKHD_ENABLED_IN_MOVIE,
    u32(0, 0, TRACK_ID, 0, 0, 0, 0), // creation, modification, track_ID, reserved, duration, reserved[2]
    u16(0, 0, 0, 0), // layer, alternate_group, volume (0: video), reserved
    u32(...UNITY_MATRIX, width * 0x10000, height * 0x10000), // width, height in 16.16
  );
  const mvhd = fullBox(
    'mvhd', 0, 0,
    u32(0, 0, VIDEO_CLOCK_RATE, 0, RATE_ONE), // creation, modification, timescale, duration, rate
    u16(VOLUME_ONE, 0), u32(0, 0), // volume, reserved
    u32(...UNITY_MATRIX, 0, 0, 0, 0, 0, 0, TRACK_ID + 1), // matrix, pre_defined[6], next_track_ID
  );
  // trex: track_ID, default_sample_description_index, then duration, size and flags, all per sample.
  const mvex = box('mvex', fullBox('trex', 0, 0, u32(TRACK_ID, 1, 0, 0, 0)));
  return [ftyp, box('moov', mvhd, box('trak', tkhd, mdia), mvex)];
}

interface Sample {
  data: Buffer;
  /** Ticks since the first frame. */
  time: number;
  keyframe: boolean;
}

/**
 * Frames in, fragmented MP4 out (see the top). A JPEG's bytes are not copied: the writer holds
 * `frame.data` until its fragment goes out, so the caller must not reuse that buffer.
 */
export class Mp4Writer implements ContainerWriter {
  private readonly fragmentTicks: number;
  /** Set when the header is written, at the first usable keyframe. */
  private codec: CodecName | undefined;
  private firstPts = 0;
  private lastTime = 0;
  /** The time between the last two frames: what the very last frame is given at end(). */
  private lastDuration = LONE_FRAME_TICKS;
  private pending: Sample[] = [];
  private sequence = 0;
  private ended = false;

  constructor(opts: { fragmentMs?: number } = {}) {
    this.fragmentTicks = (opts.fragmentMs ?? MP4_FRAGMENT_MS) * TICKS_PER_MS;
  }

  write(frame: ContainerFrame): Buffer[] {
    if (this.ended) return [];
    const out: Buffer[] = [];
    if (this.codec === undefined) {
      if (!frame.keyframe) return [];
      const c = codec(frame.codec);
      const size = c.frameSize(frame.data);
      const config = c.container.config?.(frame.data);
      // A keyframe whose size (or decoder configuration: H.264's SPS/PPS) cannot be read cannot start the file.
      if (!size || config === null) return [];
      out.push(...header(frame.codec, size.width, size.height, config));
      this.codec = frame.codec;
      this.firstPts = frame.pts;
    } else if (frame.codec !== this.codec) {
      return []; // one track, one sample entry: another codec has nowhere to go
    }
    // Annex B our depacketizer did not build could be malformed: such a frame is dropped.
    const data = codec(frame.codec).container.sample(frame.data);
    if (!data) return out;
    // pts never decreasing is the caller's promise. If one goes back or repeats anyway, it is put
    // one tick after the previous frame: a sample lasting 0 ticks would give two frames one time,
    // which FFmpeg reports as non-monotonic timestamps. Later frames keep their own pts. Only the
    // very first frame finds nothing pending: fragment() is always followed by a push.
    const first = this.pending[0];
    const time = first ? Math.max(frame.pts - this.firstPts, this.lastTime + 1) : 0;
    if (first) {
      this.lastDuration = time - this.lastTime;
      if (frame.keyframe || time - first.time >= this.fragmentTicks) out.push(...this.fragment(time));
    }
    this.pending.push({ data, time, keyframe: frame.keyframe });
    this.lastTime = time;
    return out;
  }

  /** The buffered fragment, its last frame lasting as long as the one before it. Once only. */
  end(): Buffer[] {
    if (this.ended || this.pending.length === 0) return [];
    this.ended = true;
    return this.fragment(this.lastTime + this.lastDuration);
  }

  /** moof + mdat for the buffered samples; `nextTime` is when the last of them ends. */
  private fragment(nextTime: number): Buffer[] {
    const samples = this.pending;
    this.pending = [];
    this.sequence++;
    // A freeze past 2^32 ticks (13 hours) is cut short rather than thrown on; tfdt keeps the
    // timeline right from the next fragment on.
    const fields = samples.flatMap((s, i) => [
      Math.min((i + 1 < samples.length ? samples[i + 1].time : nextTime) - s.time, MAX_UINT32),
      s.data.length,
      s.keyframe ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC,
    ]);
    const baseTime = u32(Math.floor(samples[0].time / 2 ** 32), samples[0].time % 2 ** 32);
    const moof = (dataOffset: number) =>
      box(
        'moof',
        fullBox('mfhd', 0, 0, u32(this.sequence)),
        box(
          'traf',
          fullBox('tfhd', 0, TFHD_DEFAULT_BASE_IS_MOOF, u32(TRACK_ID)),
          // Version 1: a 64-bit time, since 32 bits of 90 kHz ticks run out after 13 hours.
          fullBox('tfdt', 1, 0, baseTime),
          fullBox('trun', 0, TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS, u32(samples.length, dataOffset, ...fields)),
        ),
      );
    // data_offset counts from the moof's first byte (default-base-is-moof) to the first sample,
    // past mdat's 8-byte header. The moof's size does not depend on the offset's value.
    const moofSize = moof(0).length;
    const mdatSize = samples.reduce((n, s) => n + s.data.length, 8);
    // moof and mdat header in one buffer, for one write (see the top); samples are not copied again.
    const head = Buffer.concat([moof(moofSize + 8), u32(mdatSize), Buffer.from('mdat', 'latin1')]);
    return [head, ...samples.map((s) => s.data)];
  }
}

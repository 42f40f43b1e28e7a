/**
 * Fragmented MP4 for `.mp4` recordings: ISO/IEC 14496-12 (ISO BMFF), movie fragments (§8.8) laid
 * out as CMAF (ISO/IEC 23000-19) does: one video track and, when asked, one Opus sound track
 * ("Encapsulation of Opus in ISO Base Media File Format", 1.0.0, below "Opus-in-ISOBMFF"). Written
 * strictly forward: the output may be a pipe, and a killed process leaves a file that plays up to
 * its last whole fragment.
 *
 *     ftyp                       brands ('Opus' too with sound)
 *     moov                       before the first frame; every duration 0 (unknown, fragmented)
 *       mvhd                     timescale 90000, the RTP video clock
 *       trak
 *         tkhd                   track 1, width x height
 *         mdia
 *           mdhd  hdlr 'vide'
 *           minf
 *             vmhd  dinf/dref/'url ' (media in this file)
 *             stbl  stsd: avc1 + avcC | jpeg; stts, stsc, stsz, stco empty: samples are in fragments
 *       trak                     (with sound)
 *         tkhd                   track 2, volume 1.0
 *         edts/elst              one edit for all the fragments, from media time pre-skip (0 from RTP)
 *         mdia
 *           mdhd  hdlr 'soun'    timescale 48000, Opus's own clock
 *           minf
 *             smhd  dinf/dref/'url '
 *             stbl  stsd: Opus + dOps; empty tables; an empty 'roll' sgpd + sbgp
 *       mvex
 *         trex                   track 1: no defaults used (every trun states its samples)
 *         trex                   (with sound) track 2: every sample a sync sample
 *     moof                       one per fragment
 *       mfhd                     sequence_number 1, 2, …
 *       traf                     the picture (left out of a fragment of sound alone)
 *         tfhd                   track 1, default-base-is-moof (offsets count from the moof)
 *         tfdt                   baseMediaDecodeTime: the first sample's time; the first frame is 0
 *         trun                   data_offset, then per sample duration, size and flags
 *       traf                     (with sound, when the fragment has some)
 *         tfhd tfdt              track 2; tfdt in 48 kHz samples from the first frame
 *         trun                   data_offset, then per sample duration and size
 *         sgpd sbgp              'roll': every sample needs 80 ms decoded before it
 *     mdat                       the fragment's frames, then its sound
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
 * Sound rides in the picture's fragments: each takes the Opus packets that came since the last
 * one. While the picture is frozen (no frames, so no fragment) sound goes out in fragments of its
 * own once 2 × `fragmentMs` of it waits (twice, so a running picture's fragments take it first),
 * which is the most of it a kill then loses. A packet's time is its capture time on the frames'
 * timeline (the writer's first frame is 0), in 48 kHz samples: the first traf's tfdt says how long
 * after the first picture the sound starts; each sample lasts as long as its TOC says (RFC 6716
 * §3.1; Opus-in-ISOBMFF §4.3.4), and where the sound has a hole (never received, or silence not
 * sent) a new traf of the same track starts, its tfdt putting the next packet on time. Sound timed before the first picture is dropped, as in mkv.ts: tfdt cannot go
 * below 0, and an edit list that began the track inside a packet would shift the sound for players
 * that ignore edit lists; so sound already running starts at most one packet (20 ms) after the
 * picture. Pre-skip is 0 for the sound a viewer records: the packets are cut from a running
 * encoder and stamped with their capture times, so there is nothing to trim and the edit list
 * maps media time 0 to the start (given another pre-skip it starts there, Opus-in-ISOBMFF §4.4).
 *
 * Where a kill may cut the file matters to FFmpeg (5.1): opening a seekable file it reads every
 * moof, and one cut short makes it refuse the whole file ("error reading header"); a cut in an
 * mdat only loses that fragment's frames from the cut on. So each fragment's moof and mdat header
 * come as one buffer, for the sink to write with one write() (a file's WriteStream does; to a pipe,
 * a write up to PIPE_BUF is atomic, and a moof is 100 + 12 bytes a frame, plus 118 + 8 bytes a
 * packet with sound).
 *
 * H.264 samples are length-prefixed (ISO/IEC 14496-15 §5.3.4.2) with the SPS and PPS left in
 * band, so a change of picture size mid-recording still decodes. MJPEG samples are the JPEGs; the
 * sample entry `jpeg` (QuickTime's Photo JPEG) is what FFmpeg's mov demuxer reads as MJPEG. Opus
 * samples are the packets as RTP carried them (Opus-in-ISOBMFF §4.3.3).
 */
import { MP4_FRAGMENT_MS, VIDEO_CLOCK_RATE } from '../defaults.ts';
import { codec, type CodecName } from '../codecs/registry.ts';
import { OPUS_RATE, opusPacketSamples, parseOpusHead, type OpusHead } from '../codecs/opus/opus.ts';
import { unlessMalformed } from '../util/errors.ts';
import { TICKS_PER_MS, type ContainerAudio, type ContainerFrame, type ContainerTracks, type ContainerWriter } from './container.ts';

/** The last sample's duration when there is no previous one to copy: 1/30 s at 90 kHz. */
export const LONE_FRAME_TICKS = 3000;
export const TRACK_ID = 1;
/** The sound's track. */
export const AUDIO_TRACK_ID = 2;

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
 * and is not a sync sample. Every Opus sample is a sync sample (Opus-in-ISOBMFF §4.3.6.1).
 */
export const SAMPLE_FLAGS_SYNC = 0x02000000;
export const SAMPLE_FLAGS_NON_SYNC = 0x01010000;
/**
 * Opus needs 80 ms decoded before its output is right after a random access (Opus-in-ISOBMFF
 * §4.3.6.2), in 48 kHz samples: a traf's 'roll' distance counts its shortest packets into it.
 */
export const OPUS_PRE_ROLL_SAMPLES = 3840;
/**
 * §8.9.4: a group_description_index from 0x10001 up points into the traf's own sgpd (the
 * first entry here), since the packets' length, and so the roll distance, is known only there.
 */
export const SBGP_TRAF_FIRST_ENTRY = 0x10001;
/** tkhd flags (§8.3.2.3): track_enabled | track_in_movie. */
const TKHD_ENABLED_IN_MOVIE = 0x000003;
/** 'url ' flags (§8.7.2.3): the media data is in the same file. */
const URL_SELF_CONTAINED = 0x000001;
/** vmhd flags: 1, as §12.1.2.2 requires. */
const VMHD_FLAGS = 0x000001;
/** The identity matrix (§6.2.2), 16.16 and 2.30 fixed point. */
const UNITY_MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000];
/** Rate 1.0 (16.16), volume 1.0 (8.8) in mvhd and an audio tkhd. */
const RATE_ONE = 0x00010000;
const VOLUME_ONE = 0x0100;
/** elst media_rate 1.0: integer 1, fraction 0 (§8.6.6.2). */
const MEDIA_RATE_ONE = 0x00010000;
/** 'und' (ISO 639-2) packed as three 5-bit letters minus 0x60 (§8.4.2.3). */
const LANGUAGE_UND = 0x55c4;
/** VisualSampleEntry (§12.1.3.2) templates: 72 dpi (16.16), colour with no alpha. */
const RESOLUTION_72_DPI = 0x00480000;
const DEPTH_COLOUR = 0x0018;
/** OpusSampleEntry (Opus-in-ISOBMFF §4.3.1): samplesize 16, samplerate 48000 in 16.16. */
const OPUS_SAMPLE_SIZE = 16;
const OPUS_SAMPLE_RATE_16_16 = OPUS_RATE * 0x10000;
/** OpusHead's channel mapping table starts at byte 19 (RFC 7845 §5.1), after the family. */
const OPUS_HEAD_TABLE_OFFSET = 19;
/** 90 kHz ticks to 48 kHz samples: 8/15. */
const AUDIO_PER_VIDEO_TICK = OPUS_RATE / VIDEO_CLOCK_RATE;
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

/** A 64-bit field from a number below 2^53. */
function u64(value: number): Buffer {
  return u32(Math.floor(value / 2 ** 32), value % 2 ** 32);
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

const fourcc = (s: string) => Buffer.from(s, 'latin1');

/**
 * The OpusSpecificBox (Opus-in-ISOBMFF §4.3.2): OpusHead's fields after its magic, big-endian
 * where OpusHead is little-endian, with Version 0. The mapping table, for a family other than 0,
 * is copied as it is.
 */
export function dOps(headBytes: Buffer, head: OpusHead): Buffer {
  const fields = Buffer.alloc(11);
  fields[0] = 0; // Version
  fields[1] = head.channels; // OutputChannelCount
  fields.writeUInt16BE(head.preSkip, 2);
  fields.writeUInt32BE(head.inputSampleRate, 4);
  fields.writeInt16BE(head.outputGain, 8);
  fields[10] = head.mappingFamily;
  const table = head.mappingFamily === 0 ? [] : [headBytes.subarray(OPUS_HEAD_TABLE_OFFSET, OPUS_HEAD_TABLE_OFFSET + 2 + head.channels)];
  return box('dOps', fields, ...table);
}

/** A 'roll' SampleGroupDescriptionBox (§8.9.3), version 1 with 2-byte AudioRollRecoveryEntries (§10.1.1.2). */
function rollGroups(...distances: number[]): Buffer {
  const entries = Buffer.alloc(2 * distances.length);
  distances.forEach((d, i) => entries.writeInt16BE(d, 2 * i));
  return fullBox('sgpd', 1, 0, fourcc('roll'), u32(2, distances.length), entries); // default_length 2, entry_count
}

/** The sample tables of a track whose samples are all in fragments (§8.8.1): empty. */
function emptyTables(sampleEntry: Buffer, ...groups: Buffer[]): Buffer {
  return box(
    'stbl',
    fullBox('stsd', 0, 0, u32(1), sampleEntry),
    fullBox('stts', 0, 0, u32(0)),
    fullBox('stsc', 0, 0, u32(0)),
    fullBox('stsz', 0, 0, u32(0, 0)), // sample_size, sample_count
    fullBox('stco', 0, 0, u32(0)),
    ...groups,
  );
}

/** dinf/dref with one 'url ' entry: the media is in this file. */
const dinf = () => box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, URL_SELF_CONTAINED)));

/** mdhd (§8.4.2): times and duration 0, the track's timescale. */
const mdhd = (timescale: number) => fullBox('mdhd', 0, 0, u32(0, 0, timescale, 0), u16(LANGUAGE_UND, 0));

/** hdlr (§8.4.3): pre_defined, handler_type, reserved[3], a name. */
const hdlr = (type: string, name: string) => fullBox('hdlr', 0, 0, u32(0), fourcc(type), u32(0, 0, 0), Buffer.from(`${name}\0`, 'latin1'));

/** tkhd (§8.3.2), version 0, duration 0 (fragmented). */
function tkhd(trackId: number, volume: number, width: number, height: number): Buffer {
  return fullBox(
    'tkhd', 0, TKHD_ENABLED_IN_MOVIE,
    u32(0, 0, trackId, 0, 0, 0, 0), // creation, modification, track_ID, reserved, duration, reserved[2]
    u16(0, 0, volume, 0), // layer, alternate_group, volume (0 for video), reserved
    u32(...UNITY_MATRIX, width * 0x10000, height * 0x10000), // width, height in 16.16
  );
}

function videoTrak(name: CodecName, width: number, height: number, config: { record: Buffer; box: string } | undefined): Buffer {
  // VisualSampleEntry (§12.1.3.2) after SampleEntry's 6 reserved bytes and data_reference_index.
  const sampleEntry = box(
    codec(name).container.mp4SampleEntry,
    Buffer.alloc(6), u16(1), // reserved, data_reference_index: the one dref entry
    Buffer.alloc(16), // pre_defined, reserved, pre_defined[3]
    u16(width, height),
    u32(RESOLUTION_72_DPI, RESOLUTION_72_DPI, 0), // horizresolution, vertresolution, reserved
    u16(1), // frame_count
    Buffer.alloc(32), // compressorname: empty Pascal string
    u16(DEPTH_COLOUR, 0xffff), // depth, pre_defined = -1
    ...(config ? [box(config.box, config.record)] : []),
  );
  const minf = box('minf', fullBox('vmhd', 0, VMHD_FLAGS, u16(0, 0, 0, 0)), dinf(), emptyTables(sampleEntry)); // graphicsmode copy, opcolor
  return box('trak', tkhd(TRACK_ID, 0, width, height), box('mdia', mdhd(VIDEO_CLOCK_RATE), hdlr('vide', 'VideoHandler'), minf));
}

/** The Opus track by Opus-in-ISOBMFF §4.2: 'soun', smhd, timescale 48000, Opus + dOps, roll groups. */
function audioTrak(head: OpusHead & { bytes: Buffer }): Buffer {
  // OpusSampleEntry (§4.3.1): AudioSampleEntry (ISO §12.2.3.2) after SampleEntry's fields.
  const sampleEntry = box(
    'Opus',
    Buffer.alloc(6), u16(1), // reserved, data_reference_index
    u32(0, 0), // reserved[2]
    u16(head.channels, OPUS_SAMPLE_SIZE, 0, 0), // channelcount, samplesize, pre_defined, reserved
    u32(OPUS_SAMPLE_RATE_16_16),
    dOps(head.bytes, head),
  );
  // §4.3.6.2 wants a 'roll' sgpd and sbgp in the stbl: it holds no samples, so both are empty,
  // and each traf brings its own (see fragment()).
  const minf = box(
    'minf',
    fullBox('smhd', 0, 0, u16(0, 0)), // balance 0 (centre), reserved
    dinf(),
    emptyTables(sampleEntry, rollGroups(), fullBox('sbgp', 0, 0, fourcc('roll'), u32(0))),
  );
  // §4.4: an edit list shall be present, and it (not dOps's informative PreSkip) trims the
  // priming samples. One edit over all the fragments (segment_duration 0: as long as the samples)
  // from media time pre-skip: a packet's media time is its decoder output's, pre-skip included
  // (ContainerAudio.pts). The recordings' streams from RTP have pre-skip 0: nothing is trimmed.
  const edts = box('edts', fullBox('elst', 0, 0, u32(1, 0, head.preSkip, MEDIA_RATE_ONE))); // entry_count, segment_duration, media_time, rate
  return box('trak', tkhd(AUDIO_TRACK_ID, VOLUME_ONE, 0, 0), edts, box('mdia', mdhd(OPUS_RATE), hdlr('soun', 'SoundHandler'), minf));
}

/** ftyp and moov: everything before the first fragment. */
function header(name: CodecName, width: number, height: number, config: { record: Buffer; box: string } | undefined, opus: (OpusHead & { bytes: Buffer }) | undefined): Buffer[] {
  // 'Opus' declares the Opus encapsulation (Opus-in-ISOBMFF §4.1); 'iso6' already brings roll groups.
  const brands = ['isom', 'iso5', 'iso6', 'mp41', ...codec(name).container.mp4Brands, ...(opus ? ['Opus'] : [])];
  const ftyp = box('ftyp', fourcc('isom'), u32(0), fourcc(brands.join('')));
  const tracks = opus ? [videoTrak(name, width, height, config), audioTrak(opus)] : [videoTrak(name, width, height, config)];
  const mvhd = fullBox(
    'mvhd', 0, 0,
    u32(0, 0, VIDEO_CLOCK_RATE, 0, RATE_ONE), // creation, modification, timescale, duration, rate
    u16(VOLUME_ONE, 0), u32(0, 0), // volume, reserved
    u32(...UNITY_MATRIX, 0, 0, 0, 0, 0, 0, tracks.length + 1), // matrix, pre_defined[6], next_track_ID
  );
  // trex (§8.8.3): track_ID, default_sample_description_index, then duration, size and flags.
  // The video's trun states all three per sample; the sound's states duration and size, and
  // every Opus sample is a sync sample.
  const trex = [fullBox('trex', 0, 0, u32(TRACK_ID, 1, 0, 0, 0))];
  if (opus) trex.push(fullBox('trex', 0, 0, u32(AUDIO_TRACK_ID, 1, 0, 0, SAMPLE_FLAGS_SYNC)));
  return [ftyp, box('moov', mvhd, ...tracks, box('mvex', ...trex))];
}

interface Sample {
  data: Buffer;
  /** Ticks since the first frame. */
  time: number;
  keyframe: boolean;
}

interface AudioSample {
  data: Buffer;
  /** 48 kHz samples since the first frame. */
  time: number;
  /** Its length by its TOC (RFC 6716 §3.1), in 48 kHz samples. */
  length: number;
}

/** One track's part of a fragment: its traf without the data_offset, and its samples. */
interface TrackRun {
  trackId: number;
  baseTime: number;
  trunFlags: number;
  /** The trun's per-sample fields, in order. */
  fields: number[];
  count: number;
  data: Buffer[];
  /** Boxes after the trun. */
  after: Buffer[];
}

/**
 * The packets split where the sound has a hole (a packet starting more than half a packet after
 * the one before ends: sound never received, or silence not sent): each run becomes a traf whose
 * tfdt puts its first packet in place, since a sample's duration must be its packet's length
 * (Opus-in-ISOBMFF §4.3.4), not the time to the next one. A packet overlapping the one before by
 * less than that stays in the run; the next traf's tfdt takes up the difference.
 */
function contiguous(samples: AudioSample[]): AudioSample[][] {
  const runs: AudioSample[][] = [];
  for (const s of samples) {
    const run = runs.at(-1);
    const prev = run?.at(-1);
    if (run && prev && s.time - (prev.time + prev.length) <= prev.length / 2) run.push(s);
    else runs.push([s]);
  }
  return runs;
}

/**
 * Frames and, with a sound track, Opus packets in; fragmented MP4 out (see the top). A sample's
 * bytes are not copied: the writer holds `frame.data` (a JPEG) and each packet's `data` until its
 * fragment goes out, so the caller must not reuse those buffers.
 */
export class Mp4Writer implements ContainerWriter {
  private readonly fragmentTicks: number;
  /** Sound that waits this long (48 kHz) goes out without the picture, which has frozen. */
  private readonly audioAloneSamples: number;
  /** The sound track's OpusHead, read and as given. */
  private readonly opus: (OpusHead & { bytes: Buffer }) | undefined;
  /** Set when the header is written, at the first usable keyframe. */
  private codec: CodecName | undefined;
  private firstPts = 0;
  private lastTime = 0;
  /** The time between the last two frames: what the very last frame is given at end(). */
  private lastDuration = LONE_FRAME_TICKS;
  private pending: Sample[] = [];
  private audioPending: AudioSample[] = [];
  /** The latest packet written: the next one must start after it. */
  private audioLast?: AudioSample;
  private sequence = 0;
  private ended = false;
  /**
   * Opus packets given no bytes: before the file started (before the first keyframe, or timed
   * before its first picture), timed no later than the packet before (the sound's clock went
   * back), malformed (RFC 6716 §3.4), or given to a writer without a sound track.
   */
  readonly audioDropped = { beforeStart: 0, tooOld: 0, malformed: 0, noTrack: 0 };

  /** `audio.head` is the sound track's OpusHead (RFC 7845 §5.1), checked here (PacketError). */
  constructor(opts: { fragmentMs?: number } & ContainerTracks = {}) {
    const fragmentMs = opts.fragmentMs ?? MP4_FRAGMENT_MS;
    this.fragmentTicks = fragmentMs * TICKS_PER_MS;
    this.audioAloneSamples = 2 * fragmentMs * (OPUS_RATE / 1000);
    this.opus = opts.audio ? { ...parseOpusHead(opts.audio.head), bytes: opts.audio.head } : undefined;
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
      out.push(...header(frame.codec, size.width, size.height, config, this.opus));
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

  /**
   * The bytes for one Opus packet on track 2: usually none, since it waits for the picture's next
   * fragment (a fragment of sound alone when the picture has frozen). Dropped ones are counted in
   * `audioDropped`, never thrown.
   */
  writeAudio(packet: ContainerAudio): Buffer[] {
    if (this.ended) return [];
    if (!this.opus) {
      this.audioDropped.noTrack++;
      return [];
    }
    // The header needs the first video keyframe (its size and decoder configuration).
    if (this.codec === undefined) {
      this.audioDropped.beforeStart++;
      return [];
    }
    const length = unlessMalformed(() => opusPacketSamples(packet.data), undefined);
    if (length === undefined) {
      this.audioDropped.malformed++;
      return [];
    }
    const time = Math.round((packet.pts - this.firstPts) * AUDIO_PER_VIDEO_TICK);
    // tfdt cannot go below 0, where the first picture is.
    if (time < 0) {
      this.audioDropped.beforeStart++;
      return [];
    }
    // A packet may start a little before the previous one ends (the two SR mappings round), which
    // only shortens that one's sample; one starting no later than the previous one comes from a
    // sound clock that went back (a restarted sharer, until its first frame is stamped): dropped,
    // since a sample's time never goes back.
    if (this.audioLast && time <= this.audioLast.time) {
      this.audioDropped.tooOld++;
      return [];
    }
    const out: Buffer[] = [];
    const waiting = this.audioPending[0];
    if (waiting && time - waiting.time >= this.audioAloneSamples) out.push(...this.fragment(undefined));
    const sample = { data: packet.data, time, length };
    this.audioPending.push(sample);
    this.audioLast = sample;
    return out;
  }

  /** The buffered fragment, its last frame lasting as long as the one before it. Once only. */
  end(): Buffer[] {
    if (this.ended || (this.pending.length === 0 && this.audioPending.length === 0)) return [];
    this.ended = true;
    return this.fragment(this.pending.length ? this.lastTime + this.lastDuration : undefined);
  }

  /**
   * moof + mdat for the buffered samples: the frames when `nextTime` (when the last of them ends)
   * is given, and the sound that waits.
   */
  private fragment(nextTime: number | undefined): Buffer[] {
    const runs: TrackRun[] = [];
    if (nextTime !== undefined && this.pending.length) runs.push(this.videoRun(this.pending, nextTime));
    runs.push(...contiguous(this.audioPending).map((run) => this.audioRun(run)));
    if (nextTime !== undefined) this.pending = [];
    this.audioPending = [];
    this.sequence++;
    const moof = (dataOffset: number) => {
      let offset = dataOffset;
      const trafs = runs.map((r) => {
        const traf = box(
          'traf',
          fullBox('tfhd', 0, TFHD_DEFAULT_BASE_IS_MOOF, u32(r.trackId)),
          // Version 1: a 64-bit time, since 32 bits of 90 kHz ticks run out after 13 hours.
          fullBox('tfdt', 1, 0, u64(r.baseTime)),
          fullBox('trun', 0, r.trunFlags, u32(r.count, offset, ...r.fields)),
          ...r.after,
        );
        offset += r.data.reduce((n, d) => n + d.length, 0);
        return traf;
      });
      return box('moof', fullBox('mfhd', 0, 0, u32(this.sequence)), ...trafs);
    };
    // data_offset counts from the moof's first byte (default-base-is-moof) to the track's first
    // sample, past mdat's 8-byte header and the tracks before. The moof's size does not depend on
    // the offsets' values.
    const moofSize = moof(0).length;
    const data = runs.flatMap((r) => r.data);
    const mdatSize = data.reduce((n, d) => n + d.length, 8);
    // moof and mdat header in one buffer, for one write (see the top); samples are not copied again.
    const head = Buffer.concat([moof(moofSize + 8), u32(mdatSize), fourcc('mdat')]);
    return [head, ...data];
  }

  private videoRun(samples: Sample[], nextTime: number): TrackRun {
    // A freeze past 2^32 ticks (13 hours) is cut short rather than thrown on; tfdt keeps the
    // timeline right from the next fragment on.
    const fields = samples.flatMap((s, i) => [
      Math.min((i + 1 < samples.length ? samples[i + 1].time : nextTime) - s.time, MAX_UINT32),
      s.data.length,
      s.keyframe ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC,
    ]);
    return {
      trackId: TRACK_ID,
      baseTime: samples[0].time,
      trunFlags: TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS,
      fields,
      count: samples.length,
      data: samples.map((s) => s.data),
      after: [],
    };
  }

  /** One traf of packets that follow each other (contiguous): each lasts as long as its TOC says (Opus-in-ISOBMFF §4.3.4). */
  private audioRun(samples: AudioSample[]): TrackRun {
    const fields = samples.flatMap((s) => [s.length, s.data.length]);
    // Opus-in-ISOBMFF §4.3.6.2: every traf with Opus samples has a 'roll' sbgp; all its samples
    // are in one group whose distance counts its shortest packets into the 80 ms pre-roll.
    const shortest = Math.min(...samples.map((s) => s.length));
    const roll = -Math.ceil(OPUS_PRE_ROLL_SAMPLES / shortest);
    return {
      trackId: AUDIO_TRACK_ID,
      baseTime: samples[0].time,
      trunFlags: TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE, // flags: trex's, sync
      fields,
      count: samples.length,
      data: samples.map((s) => s.data),
      after: [rollGroups(roll), fullBox('sbgp', 0, 0, fourcc('roll'), u32(1, samples.length, SBGP_TRAF_FIRST_ENTRY))],
    };
  }
}

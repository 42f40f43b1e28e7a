/**
 * Reading Opus packets out of FFmpeg's Ogg muxer on a pipe (`-c:a libopus -f opus pipe:N`), each
 * with its duration and its place on the 48 kHz clock.
 *
 * Ogg page (RFC 3533 §6), every multi-byte field little-endian:
 *
 *     offset 0      4         5        6             14       18        22      26        27
 *     +------+---------+--------+-------------+--------+---------+-------+---------+-----------+---- … ----+
 *     | OggS | version | flags  | granule pos | serial | page no | CRC   | n segs  | lacing[n] | segments  |
 *     +------+---------+--------+-------------+--------+---------+-------+---------+-----------+---- … ----+
 *              UI8 = 0   UI8      SI64          UI32     UI32      UI32    UI8       n × UI8     Σ lacing
 *                        01 continued packet, 02 first page (BOS), 04 last page (EOS)
 *
 * A packet is a run of lacing values ending with one below 255 (§5); a run that reaches the end of
 * the page goes on at the start of the next, which then has the 'continued' flag. The CRC (§6) is
 * CRC-32 with polynomial 0x04c11db7, unreflected, initial value 0 and no final XOR, over the whole
 * page with its CRC field read as zero.
 *
 * Opus in Ogg (RFC 7845 §3): the first packet, alone on the BOS page, is the ID header "OpusHead"
 * (§5.1: kept, a Matroska writer needs it as CodecPrivate); the second is the comment header
 * "OpusTags" (§5.2: skipped without being buffered, it may hold megabytes of cover art); every later
 * packet is one audio packet. A page's granule position counts 48 kHz samples up to the end of the
 * last packet that completes on it, pre-skip included (§4; PCM position = granule − pre-skip, §4.3).
 *
 * A packet is handed out when its last page is whole and its CRC checked: as a view of the pushed
 * chunk when it sits in one page (so a pushed chunk must not be reused), copied when it spans pages.
 * Bad input never throws: a page with a bad CRC, bytes between pages, a page of another stream and a
 * packet cut by a lost page are counted and dropped, and reading goes on at the next "OggS". What is
 * buffered is at most one page and one packet (MAX_BUFFERED_BYTES).
 *
 * Latency: FFmpeg fills a page for `-page_duration` (1 s by default) before writing it, and nothing
 * on a page can come out before the page ends; a live sharer passes `-page_duration 20000` (µs) to
 * get one 20 ms packet a page.
 */
import { PacketError } from '../util/errors.ts';
import { ByteQueue } from './flv.ts';
import { OPUS_HEAD_MAGIC, opusPacketSamples, parseOpusHead, type OpusHead } from '../codecs/opus/opus.ts';

/** One Ogg packet of audio. */
export interface OpusPacket {
  /** One Opus packet; with a multistream OpusHead, one per stream (RFC 7845 §3). */
  data: Buffer;
  /** Its duration in 48 kHz samples, from its TOC byte (RFC 6716 §3.1). */
  samples: number;
  /**
   * 48 kHz sample index at its end, on the granule position's scale (pre-skip included): the sum
   * of the durations before it, moved on by the granule position past packets lost on the way.
   */
  endSample: number;
  /**
   * Samples to drop from the end of its decoded output: the stream ends between frames
   * (RFC 7845 §4.4, end trimming; Matroska's DiscardPadding). Only on the last page's packets.
   */
  discardEnd?: number;
}

// RFC 3533 §6 layout.
export const OGG_CAPTURE_PATTERN = Buffer.from('OggS', 'latin1');
export const OGG_PAGE_HEADER_SIZE = 27;
const OFF_VERSION = 4;
const OFF_FLAGS = 5;
const OFF_GRANULE = 6;
const OFF_SERIAL = 14;
const OFF_SEQUENCE = 18;
const OFF_CRC = 22;
const OFF_SEGMENTS = 26;
export const FLAG_CONTINUED = 0x01;
export const FLAG_BOS = 0x02;
export const FLAG_EOS = 0x04;
/** 'No packet completes on this page' (RFC 3533 §6, RFC 7845 §4): -1 in two's complement. */
export const NO_GRANULE = -1;
/** A segment of 255 bytes does not end its packet (RFC 3533 §5). */
const LACING_CONTINUES = 255;
/** Largest page: its header, 255 lacing values, 255 segments of 255 bytes. */
export const MAX_OGG_PAGE_BYTES = OGG_PAGE_HEADER_SIZE + 255 + 255 * 255;

/**
 * Largest Ogg packet reassembled across pages. RFC 7845 §6: without padding, a packet of N Opus
 * streams is at most 61,298·N − 2 bytes (120 ms as 2.5 ms frames of 1275 bytes, VBR code 3), so
 * 61,296 for mono or stereo; its "reasonable limit" for the 8 channels of family 1 is 61,310 bytes.
 * 64 KiB holds both. Anything bigger is padding or an attack (§6: reject it): dropped and counted.
 */
export const MAX_OPUS_PACKET_BYTES = 64 * 1024;
/** What a reader holds between pushes: one partial page and one partial packet. */
export const MAX_BUFFERED_BYTES = MAX_OGG_PAGE_BYTES + MAX_OPUS_PACKET_BYTES;

// RFC 7845 §5.2: the comment header, skipped.
export const OPUS_TAGS_MAGIC = Buffer.from('OpusTags', 'latin1');

/** CRC-32 of RFC 3533 §6, one table entry per byte value. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let bit = 0; bit < 8; bit++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

/** The Ogg CRC of `bytes` (init 0, no final XOR). For a page, see oggPageCrc. */
export function oggCrc32(bytes: Buffer, crc = 0): number {
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ bytes[i]) & 0xff]) >>> 0;
  return crc;
}

const ZERO_CRC_FIELD = Buffer.alloc(4);

/** The CRC a whole page must carry: over the page with its CRC field as zero. */
export function oggPageCrc(page: Buffer): number {
  let crc = oggCrc32(page.subarray(0, OFF_CRC));
  crc = oggCrc32(ZERO_CRC_FIELD, crc);
  return oggCrc32(page.subarray(OFF_CRC + 4), crc);
}

/** What becomes of the packet that runs off the end of the last page. */
type Carry =
  | 'none' // the last page ended on a packet boundary
  | 'collect' // its first parts are in `parts`
  | 'skip' // the comment header, skipped unread
  | 'lost'; // an audio packet dropped (oversized, or its head lost): a hole when it ends

/** Where a dropped audio packet stood on its page: its samples are unknown, the granule tells. */
const HOLE = null;
type Slot = OpusPacket | typeof HOLE;

/**
 * Incremental Ogg Opus demuxer: push chunks of any size, get whole audio packets. One logical
 * stream at a time: the one whose BOS page carried a valid OpusHead (a later BOS page, such as a
 * chained stream's after an EOS, starts over). Never throws on bad input; see `counters`.
 */
export class OggOpusReader {
  private q = new ByteQueue();
  /** The ID header packet, copied (a few bytes that outlive the chunk they came in). */
  private idHeader: Buffer | undefined;
  private idFields: OpusHead | undefined;
  /** Following a stream: its serial number and the page number expected next. */
  private following = false;
  private serial = 0;
  private nextSequence = 0;
  private ended = false;
  /** The comment header has not completed yet: packets are not audio. */
  private inTags = false;
  private carry: Carry = 'none';
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** Sample index at the end of the last packet handed out. */
  private endSample = 0;
  /**
   * The next granule position places the packets rather than checks them: at a stream's start (it
   * may begin past 0, RFC 7845 §4.5) and after a lost page took packets, seen or not, with it.
   */
  private anchor = true;

  readonly counters = {
    /** Pages whose CRC matched. */
    pages: 0,
    /** Audio packets handed out. */
    packets: 0,
    /** Pages dropped for a CRC mismatch. */
    crcErrors: 0,
    /** Bytes not part of any good page: junk before a page, the rest of a bad one. */
    skippedBytes: 0,
    /** Good pages outside the stream followed: another serial, before any OpusHead, after EOS. */
    strayPages: 0,
    /** Times the page number jumped: pages of our stream were lost. */
    sequenceGaps: 0,
    /** Parts of packets dropped because the rest of the packet went with a lost page. */
    droppedFragments: 0,
    /** Packets over MAX_OPUS_PACKET_BYTES, dropped. */
    oversizePackets: 0,
    /** Audio packets whose TOC gives no duration (opusPacketSamples), dropped. */
    badPackets: 0,
    /** BOS pages without a valid OpusHead alone on them, or no OpusTags after it (RFC 7845 §3). */
    badHeads: 0,
    /** Pages whose granule position disagrees with the packets' durations. */
    granuleMismatches: 0,
  };

  /** The OpusHead packet of the stream being read (Matroska CodecPrivate). */
  get head(): Buffer | undefined {
    return this.idHeader;
  }

  /** Its fields: channels, pre-skip, etc. */
  get opusHead(): OpusHead | undefined {
    return this.idFields;
  }

  /** Bytes held between pushes; never more than MAX_BUFFERED_BYTES. */
  get bufferedBytes(): number {
    return this.q.length + this.partBytes;
  }

  /** Forgets everything but the counters: the next bytes are read as a new stream. */
  reset(): void {
    this.q.clear();
    this.idHeader = undefined;
    this.idFields = undefined;
    this.following = false;
    this.ended = false;
    this.startStream();
  }

  push(chunk: Buffer): OpusPacket[] {
    const out: OpusPacket[] = [];
    this.q.push(chunk);
    while (this.nextPage(out));
    this.counters.packets += out.length;
    return out;
  }

  /** Reads one page if its bytes are in; false when more are needed. */
  private nextPage(out: OpusPacket[]): boolean {
    const q = this.q;
    if (q.length < OGG_CAPTURE_PATTERN.length) return false;
    if (!q.peek(OGG_CAPTURE_PATTERN.length).equals(OGG_CAPTURE_PATTERN)) {
      // Hunt: everything before the next "OggS" is junk. Keep the last 3 bytes, they may start one.
      const at = q.peek(q.length).indexOf(OGG_CAPTURE_PATTERN, 1);
      const junk = at < 0 ? q.length - (OGG_CAPTURE_PATTERN.length - 1) : at;
      q.skip(junk);
      this.counters.skippedBytes += junk;
      if (at < 0) return false;
    }
    if (q.length < OGG_PAGE_HEADER_SIZE) return false;
    const h = q.peek(OGG_PAGE_HEADER_SIZE);
    // A version or flag no page has: this "OggS" was chance, not a page.
    if (h[OFF_VERSION] !== 0 || (h[OFF_FLAGS] & ~(FLAG_CONTINUED | FLAG_BOS | FLAG_EOS)) !== 0) {
      return this.dropFalseStart();
    }
    const segments = h[OFF_SEGMENTS];
    if (q.length < OGG_PAGE_HEADER_SIZE + segments) return false;
    const lacing = q.peek(OGG_PAGE_HEADER_SIZE + segments).subarray(OGG_PAGE_HEADER_SIZE);
    let bodyBytes = 0;
    for (let i = 0; i < segments; i++) bodyBytes += lacing[i];
    const size = OGG_PAGE_HEADER_SIZE + segments + bodyBytes;
    if (q.length < size) return false;
    const page = q.peek(size);
    if (page.readUInt32LE(OFF_CRC) !== oggPageCrc(page)) {
      this.counters.crcErrors++;
      return this.dropFalseStart();
    }
    q.skip(size);
    this.counters.pages++;
    this.readPage(page, segments, out);
    return true;
  }

  /** Skips the "O" of a capture pattern that began no good page; the hunt goes on after it. */
  private dropFalseStart(): boolean {
    this.q.skip(1);
    this.counters.skippedBytes++;
    return true;
  }

  private readPage(page: Buffer, segments: number, out: OpusPacket[]): void {
    const flags = page[OFF_FLAGS];
    const serial = page.readUInt32LE(OFF_SERIAL);
    const sequence = page.readUInt32LE(OFF_SEQUENCE);
    const lacing = page.subarray(OGG_PAGE_HEADER_SIZE, OGG_PAGE_HEADER_SIZE + segments);
    const body = page.subarray(OGG_PAGE_HEADER_SIZE + segments);
    const live = this.following && !this.ended;
    if (flags & FLAG_BOS) {
      // Another stream's BOS beside ours (grouped streams, RFC 3533 §4) is not ours to read.
      if (live && serial !== this.serial) this.counters.strayPages++;
      else this.readIdPage(lacing, body, serial, sequence);
      return;
    }
    if (!live || serial !== this.serial) {
      this.counters.strayPages++;
      return;
    }
    if (sequence !== this.nextSequence) {
      this.counters.sequenceGaps++;
      this.dropPartial();
    }
    this.nextSequence = (sequence + 1) >>> 0;
    if (flags & FLAG_EOS) this.ended = true;

    // What the first piece of this page belongs to.
    if (flags & FLAG_CONTINUED) {
      if (this.carry === 'none') {
        // A tail whose head was lost (or came before we joined): dropped, a hole where it ends.
        this.counters.droppedFragments++;
        this.carry = 'lost';
      }
    } else if (this.carry !== 'none') {
      this.dropPartial(); // only a malformed stream leaves a packet open without a continued page
    }

    const slots: Slot[] = [];
    let start = 0;
    let end = 0;
    for (let i = 0; i < segments; i++) {
      end += lacing[i];
      if (lacing[i] === LACING_CONTINUES) continue;
      this.endPacket(body.subarray(start, end), slots);
      start = end;
    }
    if (start < body.length) {
      // A packet runs on to the next page: keep its start, unless it is dropped anyway.
      if (this.carry === 'none' && this.inTags) this.carry = 'skip';
      else if (this.carry === 'none' || this.carry === 'collect') this.collect(body.subarray(start));
    }
    if (slots.length > 0) this.place(slots, readGranule(page), (flags & FLAG_EOS) !== 0, out);
  }

  /** The BOS page: OpusHead alone on it, complete (RFC 7845 §3). */
  private readIdPage(lacing: Buffer, body: Buffer, serial: number, sequence: number): void {
    this.following = false;
    this.idHeader = undefined;
    this.idFields = undefined;
    this.startStream();
    let fields: OpusHead | undefined;
    if (lacing.length === 1 && lacing[0] !== LACING_CONTINUES) {
      try {
        fields = parseOpusHead(body);
      } catch (err) {
        if (!(err instanceof PacketError)) throw err;
      }
    }
    if (!fields) {
      this.counters.badHeads++;
      return;
    }
    this.idHeader = Buffer.from(body);
    this.idFields = fields;
    this.following = true;
    this.ended = false;
    this.serial = serial;
    this.nextSequence = (sequence + 1) >>> 0;
    this.inTags = true;
  }

  /** Fresh per-stream state: no open packet, the comment header not yet seen, the clock at 0. */
  private startStream(): void {
    this.carry = 'none';
    this.parts = [];
    this.partBytes = 0;
    this.inTags = false;
    this.endSample = 0;
    this.anchor = true;
  }

  /** The last piece of a packet: the comment header ends, or an audio packet (or a hole) is due. */
  private endPacket(piece: Buffer, slots: Slot[]): void {
    const carry = this.carry;
    this.carry = 'none';
    if (carry === 'skip') {
      this.inTags = false;
      return;
    }
    if (carry === 'lost') {
      slots.push(HOLE);
      return;
    }
    let data = piece;
    if (carry === 'collect') {
      const size = this.partBytes + piece.length;
      const parts = this.parts;
      this.parts = [];
      this.partBytes = 0;
      if (size > MAX_OPUS_PACKET_BYTES) {
        this.counters.oversizePackets++;
        slots.push(HOLE);
        return;
      }
      data = Buffer.concat([...parts, piece], size);
    }
    if (this.inTags) {
      this.inTags = false;
      if (data.subarray(0, OPUS_TAGS_MAGIC.length).equals(OPUS_TAGS_MAGIC)) return;
      this.counters.badHeads++; // no comment header: take this packet for audio, as it may be
    }
    let samples: number;
    try {
      samples = opusPacketSamples(data);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      this.counters.badPackets++;
      slots.push(HOLE);
      return;
    }
    slots.push({ data, samples, endSample: 0 });
  }

  /** A piece of a packet that goes on at the next page. */
  private collect(piece: Buffer): void {
    if (this.partBytes + piece.length > MAX_OPUS_PACKET_BYTES) {
      this.counters.oversizePackets++;
      this.parts = [];
      this.partBytes = 0;
      this.carry = 'lost';
      return;
    }
    this.parts.push(piece);
    this.partBytes += piece.length;
    this.carry = 'collect';
  }

  /**
   * After a lost page: forgets the packet it cut (counted when we held some of it) and the comment
   * header if we were in it, since whatever follows is audio.
   */
  private dropPartial(): void {
    if (this.carry === 'collect') this.counters.droppedFragments++;
    this.carry = 'none';
    this.parts = [];
    this.partBytes = 0;
    this.inTags = false;
    this.anchor = true;
  }

  /**
   * Puts the packets completed on a page on the sample clock, by the running sum, and checks it
   * against the page's granule position (RFC 7845 §4). The granule fills what the sum cannot know:
   * the duration of a dropped packet (the first hole takes it), or, with `anchor` set, where the
   * page starts.
   */
  private place(slots: Slot[], granule: number, eos: boolean, out: OpusPacket[]): void {
    let known = 0;
    for (const s of slots) if (s) known += s.samples;
    let expected = this.endSample + known;
    let holeSamples = 0;
    if (slots.includes(HOLE) && granule > expected) {
      holeSamples = granule - expected;
      expected = granule;
    }
    let trim = 0;
    if (granule === NO_GRANULE) {
      this.counters.granuleMismatches++; // packets complete here, so the page needs a granule (§4)
    } else if (granule > expected && this.anchor) {
      this.endSample = granule - known; // a start past 0 (§4.5), or samples lost with a page
    } else if (granule < expected && eos && granule >= this.endSample) {
      trim = expected - granule; // end trimming (§4.4)
    } else if (granule !== expected) {
      this.counters.granuleMismatches++; // the running sum stays: time never runs backwards
    }
    this.anchor = false;
    const audio: OpusPacket[] = [];
    for (const s of slots) {
      if (s === HOLE) {
        this.endSample += holeSamples;
        holeSamples = 0;
        continue;
      }
      this.endSample += s.samples;
      s.endSample = this.endSample;
      audio.push(s);
    }
    // Trimmed from the end backwards; §4.4 says it SHOULD fit in the last packet, but may not.
    for (let i = audio.length - 1; i >= 0 && trim > 0; i--) {
      const cut = Math.min(trim, audio[i].samples);
      audio[i].discardEnd = cut;
      trim -= cut;
    }
    out.push(...audio);
  }
}

/**
 * A page's granule position, or NO_GRANULE for -1 and for values past 2^53 (no stream gets there:
 * 5.9 million years at 48 kHz), which are read as 'no usable granule'.
 */
function readGranule(page: Buffer): number {
  const lo = page.readUInt32LE(OFF_GRANULE);
  const hi = page.readUInt32LE(OFF_GRANULE + 4);
  if (hi >= 0x200000) return NO_GRANULE;
  return hi * 2 ** 32 + lo;
}

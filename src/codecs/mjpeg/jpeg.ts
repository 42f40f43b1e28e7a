/**
 * Reads one baseline JFIF image as FFmpeg's mjpeg encoder writes it and returns what RFC 2435
 * carries: size, type (sampling, restart markers), the two quantization tables and a view of the
 * entropy-coded scan. Everything else in the file (APPn, COM, DHT) a receiver rebuilds or skips.
 *
 * Marker segments (ITU T.81 B.1.1.4): 0xFF, a marker code, and for all but the standalone markers
 * a 16-bit length that counts itself:
 *
 *     +------+------+------------+----------------------+
 *     | 0xFF | code | length(16) |  length - 2 bytes    |
 *     +------+------+------------+----------------------+
 *
 * RFC 2435 fixes much of the image (§4.1, §4.2): three components, 8-bit samples, Y sampled 2x1
 * (type 0, 4:2:2) or 2x2 (type 1, 4:2:0) against 1x1 chroma, Y using quantization table 0 and
 * Huffman tables 0, chroma table 1, and the Huffman tables of T.81 Annex K.3. An image that breaks
 * one of these cannot be sent, and the error says which FFmpeg setting to change.
 */
import { PacketError, need } from '../../util/errors.ts';
import { FrameUnsupportedError } from '../codec.ts';
import { BLOCK_SIZE, HUFFMAN_AC, HUFFMAN_DC, standardHuffman } from './tables.ts';

// T.81 Table B.1: marker codes.
export const MARKER_PREFIX = 0xff;
export const SOI = 0xd8;
export const EOI = 0xd9;
export const SOS = 0xda;
export const DQT = 0xdb;
export const DRI = 0xdd;
export const DHT = 0xc4;
export const SOF0 = 0xc0;
export const RST0 = 0xd0;
export const RST7 = 0xd7;
const DAC = 0xcc;
const JPG = 0xc8;
const SOF15 = 0xcf;
const TEM = 0x01;
/** Byte stuffing (T.81 F.1.2.3): 0xFF 0x00 in the scan is a data byte 0xFF, not a marker. */
const STUFFED = 0x00;

/** RFC 2435 §3.1.5/§3.1.6: width and height travel as pixels / 8 in one byte. */
export const JPEG_DIMENSION_UNIT = 8;
export const JPEG_MAX_DIMENSION = 255 * JPEG_DIMENSION_UNIT; // 2040

/** RFC 2435 §3.1.3 and §4.1: the types this format defines. 64 added means restart markers (§3.1.7). */
export const JPEG_TYPE_422 = 0;
export const JPEG_TYPE_420 = 1;
export const JPEG_TYPE_RESTART = 64;

/** Baseline (SOF0) sample precision, T.81 B.2.2. */
const SAMPLE_PRECISION = 8;
const COMPONENTS = 3;
/** T.81 B.2.2: sampling factors H (high nibble) and V (low nibble). */
const SAMPLING_422 = 0x21;
const SAMPLING_420 = 0x22;
const SAMPLING_CHROMA = 0x11;

/** A JPEG that is broken as a file: truncated, bad lengths, a marker where none may be. */
export class JpegFormatError extends PacketError {
  override name = 'JpegFormatError';
}

/**
 * A valid JPEG that RFC 2435 cannot carry (progressive, grayscale, custom Huffman tables, 4:4:4).
 * This is a settings problem, not line noise: the message says what to change.
 */
export class JpegUnsupportedError extends FrameUnsupportedError {
  override name = 'JpegUnsupportedError';
}

/** The image is larger than 2040x2040 or not a multiple of 8 in each direction. */
export class JpegSizeError extends JpegUnsupportedError {
  override name = 'JpegSizeError';
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    super(
      `JPEG over RTP (RFC 2435) carries at most ${JPEG_MAX_DIMENSION}x${JPEG_MAX_DIMENSION} in multiples of ` +
        `${JPEG_DIMENSION_UNIT}; got ${width}x${height}: scale with --size (e.g. --size 1280x720) or use --codec h264`,
    );
  }
}

export interface ParsedJpeg {
  width: number;
  height: number;
  /** RFC 2435 type: 0 (4:2:2) or 1 (4:2:0), plus 64 when a restart interval is set. */
  type: number;
  /**
   * [luminance, chrominance] quantization tables, 64 bytes each in zigzag order as in the DQT
   * (views). The chrominance entry is the table Cb and Cr use, even when it is the luminance one.
   */
  quantTables: Buffer[];
  /** MCUs between restart markers (DRI); 0 when there are none. */
  restartInterval: number;
  /** The entropy-coded data after SOS up to (not including) EOI: a view of the input. */
  scan: Buffer;
}

interface FrameInfo {
  width: number;
  height: number;
  sampling: number;
  /** Component identifiers and quantization table selectors, in SOF order. */
  ids: number[];
  tq: number[];
}

/** Checks that `width` x `height` fits RFC 2435's one-byte fields; throws JpegSizeError if not. */
export function checkJpegSize(width: number, height: number): void {
  const ok = (n: number): boolean => n > 0 && n <= JPEG_MAX_DIMENSION && n % JPEG_DIMENSION_UNIT === 0;
  if (!ok(width) || !ok(height)) throw new JpegSizeError(width, height);
}

export function parseJpeg(buf: Buffer): ParsedJpeg {
  need('JPEG SOI marker', buf.length, 2);
  if (buf[0] !== MARKER_PREFIX || buf[1] !== SOI) {
    throw new JpegFormatError(`JPEG: starts with 0x${hex2(buf[0])}${hex2(buf[1])}, expected SOI 0xFFD8`);
  }
  const tables: (Buffer | undefined)[] = [];
  let frame: FrameInfo | null = null;
  let restartInterval = 0;
  let o = 2;
  for (;;) {
    need(`JPEG marker at byte ${o}`, buf.length - o, 2);
    if (buf[o] !== MARKER_PREFIX) {
      throw new JpegFormatError(`JPEG: expected a marker at byte ${o}, found 0x${hex2(buf[o])}`);
    }
    let code = buf[o + 1];
    // T.81 B.1.1.2: any number of 0xFF fill bytes may precede a marker code.
    while (code === MARKER_PREFIX) {
      o++;
      need(`JPEG marker at byte ${o}`, buf.length - o, 2);
      code = buf[o + 1];
    }
    const at = o;
    o += 2;
    if (code === TEM || (code >= RST0 && code <= RST7)) continue; // standalone, no length
    if (code === SOI || code === EOI) {
      throw new JpegFormatError(`JPEG: ${code === SOI ? 'SOI' : 'EOI'} at byte ${at} before any scan`);
    }
    need(`JPEG segment length at byte ${o}`, buf.length - o, 2);
    const length = buf.readUInt16BE(o);
    if (length < 2) throw new JpegFormatError(`JPEG: segment 0x${hex2(code)} at byte ${at} has length ${length}, at least 2`);
    need(`JPEG segment 0x${hex2(code)} at byte ${at}`, buf.length - o, length);
    const body = buf.subarray(o + 2, o + length);
    o += length;

    if (code === DQT) readDqt(body, tables);
    else if (code === SOF0) frame = readSof0(body);
    else if (code === DHT) checkDht(body);
    else if (code === DRI) {
      if (body.length !== 2) throw new JpegFormatError(`JPEG: DRI has ${body.length} bytes, expected 2`);
      restartInterval = body.readUInt16BE(0);
    } else if (code === SOS) {
      if (!frame) throw new JpegFormatError('JPEG: SOS before SOF0');
      checkSos(body, frame);
      const end = findScanEnd(buf, o);
      if (end < 0) throw new JpegFormatError(`JPEG: no EOI in the ${buf.length - o} bytes after SOS`);
      if (end === o) throw new JpegFormatError('JPEG: empty scan');
      const luma = tables[frame.tq[0]];
      const chroma = tables[frame.tq[1]];
      if (!luma || !chroma) {
        throw new JpegFormatError(`JPEG: SOF0 uses quantization tables ${frame.tq.join(', ')} but not all were defined`);
      }
      const sub = frame.sampling === SAMPLING_422 ? JPEG_TYPE_422 : JPEG_TYPE_420;
      return {
        width: frame.width,
        height: frame.height,
        type: sub + (restartInterval > 0 ? JPEG_TYPE_RESTART : 0),
        quantTables: [luma, chroma],
        restartInterval,
        scan: buf.subarray(o, end),
      };
    } else if (code > SOF0 && code <= SOF15 && code !== DHT && code !== JPG && code !== DAC) {
      throw new JpegUnsupportedError(
        `JPEG: frame type SOF${code - SOF0} (not baseline); RFC 2435 carries baseline JPEG only: encode with FFmpeg's mjpeg encoder`,
      );
    } else if (code === DAC) {
      throw new JpegUnsupportedError('JPEG: arithmetic coding (DAC); RFC 2435 carries Huffman-coded baseline JPEG only');
    }
    // APPn, COM and the reserved JPGn segments say nothing RFC 2435 carries: skip them.
  }
}

/**
 * Index of the EOI marker ending the entropy-coded data that starts at `from`, or -1 if the
 * buffer ends first. Stuffed 0xFF00, restart markers and fill bytes belong to the scan; any other
 * marker there means the image has more than the one scan RFC 2435 can carry.
 */
export function findScanEnd(buf: Buffer, from: number): number {
  let i = buf.indexOf(MARKER_PREFIX, from);
  while (i >= 0 && i + 1 < buf.length) {
    const next = buf[i + 1];
    if (next === EOI) return i;
    if (next === STUFFED || (next >= RST0 && next <= RST7)) {
      i = buf.indexOf(MARKER_PREFIX, i + 2);
    } else if (next === MARKER_PREFIX) {
      i = i + 1; // fill byte before a marker
    } else {
      throw new JpegUnsupportedError(
        `JPEG: marker 0x${hex2(next)} inside the scan at byte ${i}; RFC 2435 carries a single-scan baseline image`,
      );
    }
  }
  return -1;
}

/** T.81 B.2.4.1: (Pq|Tq, 64 entries) repeated; Pq 0 means 8-bit entries, the only kind baseline has. */
function readDqt(body: Buffer, tables: (Buffer | undefined)[]): void {
  let o = 0;
  while (o < body.length) {
    const pq = body[o] >> 4;
    const tq = body[o] & 0x0f;
    if (pq !== 0) {
      throw new JpegUnsupportedError(`JPEG: 16-bit quantization table ${tq}; baseline JPEG and RFC 2435 type 0/1 use 8-bit tables`);
    }
    if (tq > 3) throw new JpegFormatError(`JPEG: quantization table destination ${tq}, must be 0-3`);
    need(`JPEG DQT table ${tq}`, body.length - o - 1, BLOCK_SIZE);
    tables[tq] = body.subarray(o + 1, o + 1 + BLOCK_SIZE);
    o += 1 + BLOCK_SIZE;
  }
}

/** T.81 B.2.2: P, Y, X, Nf, then (C, H|V, Tq) per component. */
function readSof0(body: Buffer): FrameInfo {
  need('JPEG SOF0', body.length, 6);
  const precision = body[0];
  const height = body.readUInt16BE(1);
  const width = body.readUInt16BE(3);
  const nf = body[5];
  if (precision !== SAMPLE_PRECISION) throw new JpegFormatError(`JPEG: SOF0 with ${precision}-bit samples, baseline is 8-bit`);
  need(`JPEG SOF0 with ${nf} components`, body.length, 6 + 3 * nf);
  if (nf !== COMPONENTS) {
    throw new JpegUnsupportedError(`JPEG: ${nf} components; RFC 2435 carries YCbCr (3 components): use -pix_fmt yuvj420p`);
  }
  const ids: number[] = [];
  const hv: number[] = [];
  const tq: number[] = [];
  for (let i = 0; i < nf; i++) {
    ids.push(body[6 + 3 * i]);
    hv.push(body[7 + 3 * i]);
    tq.push(body[8 + 3 * i]);
  }
  if ((hv[0] !== SAMPLING_422 && hv[0] !== SAMPLING_420) || hv[1] !== SAMPLING_CHROMA || hv[2] !== SAMPLING_CHROMA) {
    throw new JpegUnsupportedError(
      `JPEG: sampling factors (HV) ${hv.map(hex2).join('/')}; RFC 2435 carries Y 2x1 or 2x2 over 1x1 chroma ` +
        '(21/11/11 type 0, 22/11/11 type 1). FFmpeg writes 4:2:2 as 22/12/12, which no RFC 2435 type fits: use -pix_fmt yuvj420p',
    );
  }
  if (tq[1] !== tq[2]) {
    throw new JpegUnsupportedError(`JPEG: Cb and Cr use quantization tables ${tq[1]} and ${tq[2]}; RFC 2435 has one chroma table`);
  }
  // Checked here, before the scan, so an oversized capture fails on its first frame with the fix.
  checkJpegSize(width, height);
  return { width, height, sampling: hv[0], ids, tq };
}

/** T.81 B.2.4.2: (Tc|Th, 16 counts, values) repeated; each must be the Annex K.3 table RFC 2435 assumes. */
function checkDht(body: Buffer): void {
  let o = 0;
  while (o < body.length) {
    const tc = body[o] >> 4;
    const th = body[o] & 0x0f;
    need('JPEG DHT code counts', body.length - o - 1, 16);
    const bits = body.subarray(o + 1, o + 17);
    let n = 0;
    for (const b of bits) n += b;
    need(`JPEG DHT table with ${n} values`, body.length - o - 17, n);
    const values = body.subarray(o + 17, o + 17 + n);
    const std = tc === HUFFMAN_DC || tc === HUFFMAN_AC ? standardHuffman(tc, th) : null;
    if (!std || !sameBytes(bits, std.bits) || !sameBytes(values, std.values)) {
      throw new JpegUnsupportedError(
        `JPEG: Huffman table ${tc === HUFFMAN_DC ? 'DC' : 'AC'}${th} is not the standard one (JPEG Annex K.3) that ` +
          'RFC 2435 receivers assume: encode with -huffman 0',
      );
    }
    o += 17 + n;
  }
}

/** T.81 B.2.3: one interleaved sequential scan of all three components with the RFC 2435 tables. */
function checkSos(body: Buffer, frame: FrameInfo): void {
  need('JPEG SOS', body.length, 1);
  const ns = body[0];
  need(`JPEG SOS with ${ns} components`, body.length, 1 + 2 * ns + 3);
  if (ns !== COMPONENTS) {
    throw new JpegUnsupportedError(`JPEG: scan of ${ns} components; RFC 2435 carries one interleaved scan of all 3`);
  }
  for (let i = 0; i < ns; i++) {
    const id = body[1 + 2 * i];
    const tables = body[2 + 2 * i];
    const want = i === 0 ? 0x00 : 0x11; // DC|AC table selectors: luminance 0, chrominance 1
    if (id !== frame.ids[i] || tables !== want) {
      throw new JpegUnsupportedError(
        `JPEG: scan component ${i} is id ${id} with Huffman tables 0x${hex2(tables)}; RFC 2435 needs SOF order and tables 0 (Y), 1 (Cb, Cr)`,
      );
    }
  }
  const ss = body[1 + 2 * ns];
  const se = body[2 + 2 * ns];
  const ahal = body[3 + 2 * ns];
  if (ss !== 0 || se !== BLOCK_SIZE - 1 || ahal !== 0) {
    throw new JpegUnsupportedError(`JPEG: scan Ss=${ss} Se=${se} Ah/Al=0x${hex2(ahal)} is not a baseline scan`);
  }
}

function sameBytes(a: Buffer, b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function hex2(n: number): string {
  return (n ?? 0).toString(16).padStart(2, '0');
}

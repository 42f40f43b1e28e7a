/**
 * Splitting FFmpeg's `-f mjpeg` output (JPEG images back to back, no container) into whole JPEGs,
 * each handed out the moment its EOI marker arrives.
 *
 * ITU-T T.81 (JPEG) §B.1.1: an image is markers, most followed by a length that counts itself:
 *
 *     FFD8 | FFxx LLLL segment … | FFDA LLLL scan header | entropy-coded data … | FFD9
 *     SOI    APPn/DQT/SOF0/DHT/DRI                         FF00 = a data byte FF   EOI
 *                                                          FFD0-FFD7 = RST0-7
 *
 * Marker segments are skipped by their lengths (their bytes may contain FFD9 by chance); only the
 * entropy-coded data after SOS is scanned, where the encoder stuffs every data byte 0xFF with 0x00
 * (§B.1.1.5, F.1.2.3), so 0xFF followed by anything but 0x00 or RST0-7 is a real marker. Fill bytes
 * (extra 0xFF before a marker, §B.1.1.2) are allowed anywhere a marker is.
 *
 * One pass over each pushed byte; images come out as views when they sit in one chunk, else one copy.
 */
import { MAX_FRAME_BYTES } from '../defaults.ts';
import { PacketError } from '../util/errors.ts';

// T.81 Table B.1 marker codes (the byte after 0xFF).
export const MARKER_PREFIX = 0xff;
export const SOI = 0xd8;
export const EOI = 0xd9;
export const SOS = 0xda;
export const RST0 = 0xd0;
export const RST7 = 0xd7;
/** TEM: a marker without a length (T.81 Table B.1), like SOI, EOI and RSTn. */
export const TEM = 0x01;

/** Parser states. */
const S = {
  /** Expecting FF of SOI. */
  Soi0: 0,
  /** Expecting D8 of SOI. */
  Soi1: 1,
  /** Expecting FF that starts a marker. */
  MarkerFF: 2,
  /** After FF: the marker code (or more fill FFs). */
  MarkerCode: 3,
  LenHi: 4,
  LenLo: 5,
  /** Skipping the rest of a marker segment. */
  Skip: 6,
  /** Entropy-coded data after SOS. */
  Entropy: 7,
  /** Entropy-coded data, just saw FF. */
  EntropyFF: 8,
} as const;
type S = (typeof S)[keyof typeof S];

export class MjpegSplitter {
  private state: S = S.Soi0;
  /** Earlier chunks holding the start of the current image. */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private marker = 0;
  private lenHi = 0;
  private remaining = 0;
  readonly counters = { images: 0 };
  /** Called as soon as the first byte of an image (its SOI) arrives. */
  onImageStart?: () => void;

  /** Forgets any partial image; the next byte must be an SOI. */
  reset(): void {
    this.state = S.Soi0;
    this.parts = [];
    this.partsBytes = 0;
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let start = 0; // where the current image begins in this chunk
    let i = 0;
    try {
      while (i < chunk.length) {
        const b = chunk[i];
        switch (this.state) {
          case S.Soi0:
            if (b !== MARKER_PREFIX) throw new PacketError(`MJPEG stream: byte 0x${hex(b)} where an SOI (FFD8) must start`);
            start = i;
            this.onImageStart?.();
            this.state = S.Soi1;
            i++;
            break;
          case S.Soi1:
            if (b !== SOI) throw new PacketError(`MJPEG stream: FF${hex(b)} where an SOI (FFD8) must start`);
            this.state = S.MarkerFF;
            i++;
            break;
          case S.MarkerFF:
            if (b !== MARKER_PREFIX) throw new PacketError(`JPEG: byte 0x${hex(b)} where a marker (FFxx) must start`);
            this.state = S.MarkerCode;
            i++;
            break;
          case S.MarkerCode:
            i++;
            if (b === MARKER_PREFIX) break; // fill byte
            if (!this.onMarker(b)) break;
            // EOI: the image is whole.
            out.push(this.finish(chunk, start, i));
            start = i;
            break;
          case S.LenHi:
            this.lenHi = b;
            this.state = S.LenLo;
            i++;
            break;
          case S.LenLo: {
            const len = (this.lenHi << 8) | b;
            if (len < 2) throw new PacketError(`JPEG: marker FF${hex(this.marker)} segment length ${len} bytes, at least 2`);
            this.remaining = len - 2;
            i++;
            this.afterSegmentHeader();
            break;
          }
          case S.Skip: {
            const n = Math.min(this.remaining, chunk.length - i);
            this.remaining -= n;
            i += n;
            if (this.remaining === 0) this.state = this.marker === SOS ? S.Entropy : S.MarkerFF;
            break;
          }
          case S.Entropy: {
            const ff = chunk.indexOf(MARKER_PREFIX, i);
            if (ff < 0) {
              i = chunk.length;
            } else {
              i = ff + 1;
              this.state = S.EntropyFF;
            }
            break;
          }
          case S.EntropyFF:
            i++;
            if (b === 0x00 || (b >= RST0 && b <= RST7)) {
              this.state = S.Entropy; // stuffed data byte or restart marker: still in the scan
            } else if (b === MARKER_PREFIX) {
              // fill byte: stay, the next byte is the marker code
            } else if (this.onMarker(b)) {
              out.push(this.finish(chunk, start, i));
              start = i;
            }
            break;
        }
        if (this.partsBytes + (i - start) > MAX_FRAME_BYTES && (this.state as S) !== S.Soi0) {
          throw new PacketError(`MJPEG image exceeds the ${MAX_FRAME_BYTES}-byte frame cap`);
        }
      }
    } catch (err) {
      this.reset();
      throw err;
    }
    if (this.state !== S.Soi0 && start < chunk.length) {
      this.parts.push(chunk.subarray(start));
      this.partsBytes += chunk.length - start;
    }
    this.counters.images += out.length;
    return out;
  }

  /** A marker code after FF outside a segment; returns true for EOI. */
  private onMarker(code: number): boolean {
    if (code === EOI) {
      this.state = S.Soi0;
      return true;
    }
    if (code === SOI || code === 0x00) throw new PacketError(`JPEG: unexpected FF${hex(code)} inside an image`);
    if (code === TEM || (code >= RST0 && code <= RST7)) {
      this.state = S.MarkerFF; // no length follows
      return false;
    }
    this.marker = code;
    this.state = S.LenHi;
    return false;
  }

  private afterSegmentHeader(): void {
    if (this.remaining > 0) this.state = S.Skip;
    else this.state = this.marker === SOS ? S.Entropy : S.MarkerFF;
  }

  /** The image ending just before `end` in `chunk`: a view if it began in this chunk. */
  private finish(chunk: Buffer, start: number, end: number): Buffer {
    const tail = chunk.subarray(start, end);
    if (this.parts.length === 0) return tail;
    const img = Buffer.concat([...this.parts, tail], this.partsBytes + tail.length);
    this.parts = [];
    this.partsBytes = 0;
    return img;
  }
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}

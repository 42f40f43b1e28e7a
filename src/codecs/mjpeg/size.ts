/**
 * A JPEG's picture size, for the containers' track header and the viewer's dashboard.
 */
import { MARKER_PREFIX, SOI, SOS } from './jpeg.ts';

/**
 * A JPEG's size from its start-of-frame header (T.81 §B.2.2: SOFn = FFC0-FFCF except DHT C4, JPG
 * C8 and DAC CC; then length, precision, height, width), walking marker segments from SOI.
 * Any JPEG will do, not only the baseline subset RFC 2435 carries.
 */
export function jpegSize(data: Buffer): { width: number; height: number } | undefined {
  if (data.length < 4 || data[0] !== MARKER_PREFIX || data[1] !== SOI) return undefined;
  let o = 2;
  while (o + 4 <= data.length && data[o] === MARKER_PREFIX) {
    const code = data[o + 1];
    if (code === MARKER_PREFIX) {
      o++; // fill byte
      continue;
    }
    if (code === SOS) return undefined; // the scan started before any frame header
    const length = data.readUInt16BE(o + 2);
    if (code >= 0xc0 && code <= 0xcf && code !== 0xc4 && code !== 0xc8 && code !== 0xcc) {
      if (o + 9 > data.length) return undefined;
      return { height: data.readUInt16BE(o + 5), width: data.readUInt16BE(o + 7) };
    }
    o += 2 + length;
  }
  return undefined;
}

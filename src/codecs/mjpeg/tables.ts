/**
 * The tables RFC 2435 leaves out of the wire because both ends know them: the Huffman tables of
 * JPEG Annex K.3 (RFC 2435 Appendix B), and the quantization tables of Annex K.1 that Q 1-99
 * scales (RFC 2435 Appendix A, the IJG quality scaling). Plus the zigzag order DQT uses.
 */

/** One Huffman table as a DHT segment carries it (ITU T.81 B.2.4.2): 16 code counts, then values. */
export interface HuffmanSpec {
  /** Number of codes of each length 1-16 (BITS). */
  bits: readonly number[];
  /** Symbols in code order (HUFFVAL). */
  values: readonly number[];
}

/** T.81 Annex K.3.3.1, Table K.3: luminance DC differences. */
export const DC_LUMA: HuffmanSpec = {
  bits: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
  values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
};

/** T.81 Annex K.3.3.1, Table K.4: chrominance DC differences. */
export const DC_CHROMA: HuffmanSpec = {
  bits: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
  values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
};

/** T.81 Annex K.3.3.2, Table K.5: luminance AC coefficients (162 run/size symbols). */
export const AC_LUMA: HuffmanSpec = {
  bits: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
  values: [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
  ],
};

/** T.81 Annex K.3.3.2, Table K.6: chrominance AC coefficients (162 run/size symbols). */
export const AC_CHROMA: HuffmanSpec = {
  bits: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
  values: [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
  ],
};

/** DHT table class (T.81 B.2.4.2, Tc): 0 DC, 1 AC. */
export const HUFFMAN_DC = 0;
export const HUFFMAN_AC = 1;

/**
 * The standard table for DHT class `tc` and destination `th`, as RFC 2435 §4.2 assigns them:
 * destination 0 luminance, 1 chrominance. Null for destinations 2 and 3, which RFC 2435 never uses.
 */
export function standardHuffman(tc: number, th: number): HuffmanSpec | null {
  if (th === 0) return tc === HUFFMAN_DC ? DC_LUMA : AC_LUMA;
  if (th === 1) return tc === HUFFMAN_DC ? DC_CHROMA : AC_CHROMA;
  return null;
}

/** Coefficients in an 8x8 block. */
export const BLOCK_SIZE = 64;

/**
 * ZIGZAG[k] is the natural (row-major) index of the k-th coefficient in zigzag order (T.81
 * Figure A.6). Built by walking the anti-diagonals, alternating direction, instead of typed out.
 */
export const ZIGZAG: readonly number[] = (() => {
  const out: number[] = [];
  for (let s = 0; s <= 14; s++) {
    const cells: number[] = [];
    for (let row = 0; row <= s; row++) {
      const col = s - row;
      if (row < 8 && col < 8) cells.push(row * 8 + col);
    }
    // Even diagonals run bottom-left to top-right (row falling), odd ones the other way.
    if (s % 2 === 0) cells.reverse();
    out.push(...cells);
  }
  return out;
})();

/** T.81 Annex K.1, Table K.1: luminance quantization, natural order. */
const LUMA_QUANT_NATURAL = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
  87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120,
  101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/** T.81 Annex K.1, Table K.2: chrominance quantization, natural order. */
const CHROMA_QUANT_NATURAL = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99,
  99, 99, 99, 99, ...new Array<number>(32).fill(99),
];

/** RFC 2435 §3.1.4: Q 1-99 select scaled standard tables; 0 and 100-127 are reserved. */
export const Q_SCALED_MIN = 1;
export const Q_SCALED_MAX = 99;
/** RFC 2435 §3.1.4: Q 128-255 mean the tables travel in a quantization table header (§3.1.8). */
export const Q_IN_BAND_MIN = 128;
/** Q 255: in-band tables that may change every frame, so receivers must not cache them. */
export const Q_DYNAMIC = 255;

/**
 * RFC 2435 Appendix A: the luminance and chrominance tables for Q 1-99, in zigzag order as DQT
 * and the quantization table header carry them. This is the IJG quality scaling: Q 50 gives the
 * Annex K tables unchanged, lower Q coarser, higher Q finer, every entry kept within 1-255.
 */
export function scaledQuantTables(q: number): [Buffer, Buffer] {
  if (!Number.isInteger(q) || q < Q_SCALED_MIN || q > Q_SCALED_MAX) {
    throw new RangeError(`RFC 2435 scaled tables exist for Q ${Q_SCALED_MIN}-${Q_SCALED_MAX}, got ${q}`);
  }
  const scale = q < 50 ? Math.floor(5000 / q) : 200 - 2 * q;
  const make = (natural: readonly number[]): Buffer => {
    const t = Buffer.allocUnsafe(BLOCK_SIZE);
    for (let k = 0; k < BLOCK_SIZE; k++) {
      const v = Math.floor((natural[ZIGZAG[k]] * scale + 50) / 100);
      t[k] = Math.min(255, Math.max(1, v));
    }
    return t;
  };
  return [make(LUMA_QUANT_NATURAL), make(CHROMA_QUANT_NATURAL)];
}

/**
 * SRTP for one RTP source sent to a browser, for the two profiles browsers and werift agree on:
 * - SRTP_AES128_CM_HMAC_SHA1_80 (RFC 3711; what Chromium chose with the relay): the payload XORed
 *   with AES in counter mode, the keystream made by one AES-ECB context kept for the source
 *   (Node makes a new cipher context per call of createCipheriv, 13 µs a packet measured; the
 *   kept one makes a packet's 75 blocks in 2.5 µs); then HMAC-SHA1 over header, payload and
 *   rollover counter, 80 bits of it.
 * - AEAD_AES_128_GCM (RFC 7714): the header authenticated as it is, the payload encrypted, the
 *   16-byte tag after.
 * The header is written once, as it leaves (werift's own path builds header objects and writes
 * them bit by bit).
 *
 * The packet index (RFC 3711 §3.3.1): the rollover counter goes up when a new packet's sequence
 * number wraps past 65535; a repair of a packet sent before the last wrap is sent under the counter
 * it had then.
 */
import { createCipheriv, hash, type Cipher } from 'node:crypto';
import { seqDiff } from '../../rtp/seq.ts';
import { buildExtension, serializeRtp } from '../../rtp/packet.ts';

/** RFC 7714 §8: the authentication tag's length. */
export const GCM_TAG_BYTES = 16;

export interface RtpToSend {
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  /** One-byte header extensions (ids 1-14, 1-16 bytes each). */
  extensions: ReadonlyArray<{ id: number; payload: Buffer }>;
  payload: Buffer;
}

/** The RTP header of `p`, with its extensions (RFC 3550 §5.1, RFC 8285), as rtp/packet.ts writes every header. */
export function rtpHeader(p: RtpToSend): Buffer {
  const extension = p.extensions.length ? buildExtension(p.extensions.map((e) => ({ id: e.id, data: e.payload }))) : undefined;
  return serializeRtp({ padding: 0, marker: p.marker, payloadType: p.payloadType, sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, ssrc: p.ssrc, csrc: [], extension, payload: [] })[0];
}

export interface SrtpSender {
  /** The SRTP packet of `p`, in pieces to send as one datagram. `fresh`: a new packet (else a repair of one sent before). */
  protect(p: RtpToSend, fresh: boolean): Buffer[];
}

/** The rollover counter of one source (RFC 3711 §3.3.1), as its sender knows it. */
class PacketIndex {
  private roc = 0;
  /** The newest sequence number sent under `roc`. */
  private highest?: number;

  /** The rollover counter packet `seq` goes under. */
  rocOf(seq: number, fresh: boolean): number {
    if (this.highest === undefined) this.highest = seq;
    else if (fresh && seqDiff(this.highest, seq) > 0) {
      if (seq < this.highest) this.roc = (this.roc + 1) >>> 0; // wrapped
      this.highest = seq;
    } else if (seqDiff(this.highest, seq) <= 0 && seq > this.highest && this.roc > 0) {
      return this.roc - 1; // a packet from before the last wrap
    }
    return this.roc;
  }
}

/** RFC 3711 §4.2: the 80-bit tag of HMAC-SHA1. */
export const HMAC_TAG_BYTES = 10;

/**
 * Keystream made ahead for a source of full packets (a picture): KEYSTREAM_AHEAD packets' worth at
 * a time, KEYSTREAM_BYTES each (73 blocks: a payload of DEFAULT_PAYLOAD_LIMIT, 1160 bytes, fits),
 * in one call of the cipher instead of one a packet (its cost is mostly the call: 3 µs for one
 * packet's 73 blocks). A longer payload, a repair, or a source of short packets (the sound) is
 * made for itself.
 */
const KEYSTREAM_AHEAD = 32;
const KEYSTREAM_BYTES = 73 * 16;

export class SrtpCtrSender implements SrtpSender {
  private readonly index = new PacketIndex();
  private readonly ecb: Cipher;
  /** Counter blocks, rewritten per packet: salt ^ SSRC ^ index, then the block number. */
  private blocks = Buffer.alloc(0);
  private readonly iv = Buffer.alloc(16);
  /** Keystream for the packets (48-bit index) from `first` on, of `ssrc`. */
  private ahead?: { ssrc: number; first: number; stream: Buffer };
  /** The mean payload length of the latest packets: full ones get their keystream made ahead. */
  private meanLength = 0;
  /** The index of the newest packet that took its keystream from `ahead`. */
  private lastAhead?: number;
  private readonly ipad: Buffer;
  private readonly opad: Buffer;

  constructor(
    key: Buffer,
    /** 14 bytes. */
    private readonly salt: Buffer,
    /** 20 bytes. */
    authKey: Buffer,
  ) {
    this.ecb = createCipheriv('aes-128-ecb', key, null);
    this.ecb.setAutoPadding(false);
    // RFC 2104: the key (20 bytes, under SHA-1's 64-byte block) padded, XORed with 0x36 and 0x5c.
    this.ipad = Buffer.alloc(64, 0x36);
    this.opad = Buffer.alloc(64, 0x5c);
    for (let i = 0; i < authKey.length; i++) {
      this.ipad[i] ^= authKey[i];
      this.opad[i] ^= authKey[i];
    }
  }

  protect(p: RtpToSend, fresh: boolean): Buffer[] {
    const seq = p.sequenceNumber & 0xffff;
    const roc = this.index.rocOf(seq, fresh);
    const length = p.payload.length;
    this.meanLength += (length - this.meanLength) / 8;
    let keystream: Buffer;
    const index = roc * 0x10000 + seq;
    // Each part of the keystream made ahead is used once (the payload is XORed into it in place):
    // only for a packet numbered past the last one that took a part. Two packets under one
    // number and key would give away the XOR of their contents.
    if (fresh && length <= KEYSTREAM_BYTES && this.meanLength >= KEYSTREAM_BYTES / 2 && (this.lastAhead === undefined || index > this.lastAhead)) {
      this.lastAhead = index;
      let a = this.ahead;
      if (!a || a.ssrc !== p.ssrc || index < a.first || index >= a.first + KEYSTREAM_AHEAD) a = this.ahead = this.makeAhead(p.ssrc, index);
      const at = (index - a.first) * KEYSTREAM_BYTES;
      keystream = a.stream.subarray(at, at + KEYSTREAM_BYTES);
    } else {
      const n = Math.ceil(length / 16);
      this.counterBlocks(0, p.ssrc, roc, seq, n);
      keystream = this.ecb.update(this.blocks.subarray(0, n * 16));
    }
    const body = xorInto(keystream, p.payload);
    const header = rtpHeader(p);
    return [header, body, this.tag(header, body, roc)];
  }

  /** Keystream for KEYSTREAM_AHEAD packets from 48-bit index `first` on, in one call of the cipher. */
  private makeAhead(ssrc: number, first: number): { ssrc: number; first: number; stream: Buffer } {
    const n = KEYSTREAM_BYTES / 16;
    for (let k = 0; k < KEYSTREAM_AHEAD; k++) {
      const index = first + k;
      this.counterBlocks(k * KEYSTREAM_BYTES, ssrc, Math.floor(index / 0x10000) >>> 0, index & 0xffff, n);
    }
    return { ssrc, first, stream: this.ecb.update(this.blocks.subarray(0, KEYSTREAM_AHEAD * KEYSTREAM_BYTES)) };
  }

  /**
   * Writes `n` counter blocks for one packet at `at` in this.blocks. RFC 3711 §4.1.1: IV =
   * (salt · 2^16) XOR (SSRC · 2^64) XOR (index · 2^16); block j adds j.
   */
  private counterBlocks(at: number, ssrc: number, roc: number, seq: number, n: number): void {
    if (this.blocks.length < at + n * 16) {
      const grown = Buffer.alloc(Math.max(at + n * 16, KEYSTREAM_AHEAD * KEYSTREAM_BYTES));
      this.blocks.copy(grown);
      this.blocks = grown;
    }
    const iv = this.iv;
    iv.fill(0);
    this.salt.copy(iv, 0, 0, 14);
    iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
    iv.writeUInt32BE((iv.readUInt32BE(8) ^ roc) >>> 0, 8);
    iv.writeUInt16BE(iv.readUInt16BE(12) ^ seq, 12);
    const blocks = this.blocks;
    blocks.fill(iv, at, at + n * 16); // the IV in every block (one call: a copy per block cost 15 µs a packet)
    for (let j = 1; j < n; j++) {
      blocks[at + j * 16 + 14] = j >> 8;
      blocks[at + j * 16 + 15] = j & 0xff;
    }
  }

  /**
   * HMAC-SHA1 (RFC 2104) of header, payload and ROC, cut to 80 bits: two one-shot hashes over the
   * padded key's halves (crypto.hash: 4 µs where createHmac took 6, measured).
   */
  private tag(header: Buffer, body: Buffer, roc: number): Buffer {
    const inner = Buffer.allocUnsafe(64 + header.length + body.length + 4);
    this.ipad.copy(inner, 0);
    header.copy(inner, 64);
    body.copy(inner, 64 + header.length);
    inner.writeUInt32BE(roc, inner.length - 4);
    const outer = Buffer.allocUnsafe(64 + 20);
    this.opad.copy(outer, 0);
    (hash('sha1', inner, 'buffer') as Buffer).copy(outer, 64);
    return (hash('sha1', outer, 'buffer') as Buffer).subarray(0, HMAC_TAG_BYTES);
  }
}

/**
 * `keystream` XORed with `payload`, in `keystream`'s bytes (a buffer the cipher made for this
 * packet), its first payload.length of them. Four bytes at a time where both line up (the
 * keystream always does; a payload in the middle of a received batch often does not, and is
 * copied to where it does first: a copy costs less than the bytes one by one).
 */
function xorInto(keystream: Buffer, payload: Buffer): Buffer {
  const n = payload.length;
  const src = payload.byteOffset % 4 === 0 ? payload : Buffer.from(payload);
  const words = keystream.byteOffset % 4 === 0 && src.byteOffset % 4 === 0 ? n >> 2 : 0;
  if (words > 0) {
    const k = new Uint32Array(keystream.buffer, keystream.byteOffset, words);
    const s = new Uint32Array(src.buffer, src.byteOffset, words);
    for (let i = 0; i < words; i++) k[i] ^= s[i];
  }
  for (let i = words * 4; i < n; i++) keystream[i] ^= src[i];
  return keystream.subarray(0, n);
}

export class SrtpGcmSender implements SrtpSender {
  private readonly index = new PacketIndex();

  constructor(
    private readonly key: Buffer,
    private readonly salt: Buffer,
  ) {}

  protect(p: RtpToSend, fresh: boolean): Buffer[] {
    const seq = p.sequenceNumber & 0xffff;
    const roc = this.index.rocOf(seq, fresh);
    // RFC 7714 §8.1: the IV is 00 00 || SSRC || ROC || SEQ, XORed with the 12-byte salt.
    const iv = Buffer.allocUnsafe(12);
    iv.writeUInt16BE(0, 0);
    iv.writeUInt32BE(p.ssrc >>> 0, 2);
    iv.writeUInt32BE(roc, 6);
    iv.writeUInt16BE(seq, 10);
    for (let i = 0; i < 12; i++) iv[i] ^= this.salt[i];
    const header = rtpHeader(p);
    const cipher = createCipheriv('aes-128-gcm', this.key, iv);
    cipher.setAAD(header);
    const body = cipher.update(p.payload);
    cipher.final();
    return [header, body, cipher.getAuthTag()];
  }
}

/**
 * End-to-end media encryption, sharer → viewers: AES-GCM for RTP exactly as RFC 7714 lays it out
 * for SRTP (§8.1 IV, §8.2 AAD = the whole RTP header, 16-byte tag after the ciphertext), plus two
 * RFC 8285 one-byte header elements that travel in the clear (authenticated as AAD):
 *
 *    id 1, 1 byte  "udpcast frame info": bit 0 = starts a keyframe, bit 1 = starts a frame
 *    id 2, 4 bytes "udpcast ROC": the sender's rollover counter for this SSRC
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |       0xBE    |    0xDE       |           length=2            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  ID=1 | L=0   |    flags      |  ID=2 | L=3   |  ROC (MSB)    |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |          ROC (continued)                      |  0 (padding)  |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * 12 bytes: exactly the header-extension room defaults.ts reserves. The relay reads the keyframe
 * flag here (the payload is ciphertext); a viewer that joins late reads the ROC here (it cannot
 * count wraps it never saw). Frame info is left out on packets that have none to give (FEC).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { DEFAULT_PAYLOAD_LIMIT, RTP_HEADER_ROOM, UDP_PAYLOAD_BUDGET } from '../../defaults.ts';
import { PacketError, need } from '../../util/errors.ts';
import { isRtcp } from '../rtcp.ts';
import {
  buildExtension,
  checkedRtpHeaderLength,
  parseExtensionElements,
  rtpCsrcEnd,
  rtpSequence,
  rtpSsrc,
  type ExtensionElement,
  type RtpHeaderExtension,
} from '../../rtp/packet.ts';
import { AUTH_TRAILER_BYTES } from './auth.ts';
import type { MediaKey } from './keys.ts';
import { BoundedTable, IndexTracker, rocOf } from './window.ts';

/** RFC 7714 §12: AEAD_AES_128_GCM / _256_GCM use a 16-octet tag. */
export const GCM_TAG_BYTES = 16;
/** RFC 7714 §8.1: 96-bit IV. */
export const GCM_IV_BYTES = 12;
/** Local RFC 8285 ids (one-byte form, 1-14); udpcast uses no others. */
export const FRAME_INFO_EXT_ID = 1;
export const ROC_EXT_ID = 2;
export const FRAME_KEYFRAME_START = 0x01;
export const FRAME_START = 0x02;
const X_BIT = 0x10;

export interface FrameInfo {
  keyframeStart: boolean;
  frameStart: boolean;
}

function headerExtension(buf: Buffer): RtpHeaderExtension | undefined {
  if (!(buf[0] & X_BIT)) return undefined;
  const o = rtpCsrcEnd(buf);
  return { profile: buf.readUInt16BE(o), data: buf.subarray(o + 4, checkedRtpHeaderLength(buf)) };
}

function element(buf: Buffer, id: number): Buffer | undefined {
  checkedRtpHeaderLength(buf); // bounds first
  const ext = headerExtension(buf);
  if (!ext) return undefined;
  return parseExtensionElements(ext).find((e) => e.id === id)?.data;
}

/** The two elements above as an extension block (ROC omitted when undefined). */
export function buildFrameInfoExtension(info: FrameInfo | undefined, roc?: number): RtpHeaderExtension {
  const elements: ExtensionElement[] = [];
  if (info) {
    const flags = (info.keyframeStart ? FRAME_KEYFRAME_START : 0) | (info.frameStart ? FRAME_START : 0);
    elements.push({ id: FRAME_INFO_EXT_ID, data: Buffer.from([flags]) });
  }
  if (roc !== undefined) {
    const data = Buffer.alloc(4);
    data.writeUInt32BE(roc >>> 0);
    elements.push({ id: ROC_EXT_ID, data });
  }
  return buildExtension(elements);
}

/** The frame info of an RTP packet (clear or encrypted), undefined when it carries none. */
export function readFrameInfo(pkt: Buffer): FrameInfo | undefined {
  const d = element(pkt, FRAME_INFO_EXT_ID);
  if (!d) return undefined;
  if (d.length !== 1) throw new PacketError(`frame info element: ${d.length} bytes, expected 1`);
  return { keyframeStart: (d[0] & FRAME_KEYFRAME_START) !== 0, frameStart: (d[0] & FRAME_START) !== 0 };
}

/** The ROC an RTP packet carries, undefined when it carries none. */
export function readRoc(pkt: Buffer): number | undefined {
  const d = element(pkt, ROC_EXT_ID);
  if (!d) return undefined;
  if (d.length !== 4) throw new PacketError(`ROC element: ${d.length} bytes, expected 4`);
  return d.readUInt32BE(0);
}

/** Rewrites `pkt`'s header with `ext` (or none) in place of its own; payload and padding as they are. */
function replaceExtension(pkt: Buffer, ext: RtpHeaderExtension | undefined): Buffer[] {
  const hl = checkedRtpHeaderLength(pkt);
  const fixed = rtpCsrcEnd(pkt);
  const header = Buffer.allocUnsafe(fixed + (ext ? 4 + ext.data.length : 0));
  pkt.copy(header, 0, 0, fixed);
  header[0] = ext ? header[0] | X_BIT : header[0] & ~X_BIT;
  if (ext) {
    header.writeUInt16BE(ext.profile, fixed);
    header.writeUInt16BE(ext.data.length / 4, fixed + 2);
    ext.data.copy(header, fixed + 4);
  }
  return [header, pkt.subarray(hl)];
}

function otherElements(pkt: Buffer): ExtensionElement[] {
  const ext = headerExtension(pkt);
  return ext ? parseExtensionElements(ext).filter((e) => e.id !== FRAME_INFO_EXT_ID && e.id !== ROC_EXT_ID) : [];
}

/** The sharer's step before encryption: adds frame info and ROC, keeping any other elements. */
export function withSecureExtension(pkt: Buffer, info: FrameInfo | undefined, roc: number): Buffer[] {
  const ours = buildFrameInfoExtension(info, roc);
  const others = otherElements(pkt);
  const merged = others.length ? buildExtension([...others, ...parseExtensionElements(ours)]) : ours;
  return replaceExtension(pkt, merged);
}

/**
 * The viewer's step after decryption: removes our two elements, so the packet is again the one the
 * sharer's packetizer made (byte for byte when it had no extension of its own) and FEC computed
 * over the sharer's plain packets still recovers it.
 */
export function withoutSecureExtension(pkt: Buffer): Buffer {
  if (!(pkt[0] & X_BIT)) return pkt;
  const others = otherElements(pkt);
  return Buffer.concat(replaceExtension(pkt, others.length ? buildExtension(others) : undefined));
}

/** RFC 7714 §8.1: IV = salt XOR (0x0000 ‖ SSRC ‖ ROC ‖ SEQ). */
export function gcmIv(salt: Buffer, ssrc: number, roc: number, seq: number): Buffer {
  const iv = Buffer.alloc(GCM_IV_BYTES);
  iv.writeUInt32BE(ssrc >>> 0, 2);
  iv.writeUInt32BE(roc >>> 0, 6);
  iv.writeUInt16BE(seq & 0xffff, 10);
  for (let i = 0; i < GCM_IV_BYTES; i++) iv[i] ^= salt[i];
  return iv;
}

function algorithm(key: MediaKey): 'aes-128-gcm' | 'aes-256-gcm' {
  if (key.salt.length !== GCM_IV_BYTES) throw new Error(`media salt is ${key.salt.length} bytes, must be 12`);
  if (key.key.length === 16) return 'aes-128-gcm';
  if (key.key.length === 32) return 'aes-256-gcm';
  throw new Error(`media key is ${key.key.length} bytes, must be 16 or 32`);
}

/**
 * RFC 7714 §8: encrypts everything after the header (payload, padding, pad count; RFC 3711 §3.1's
 * "encrypted portion") with the header as AAD. Returns [header (a view of the input), ciphertext,
 * tag]; the input is not written. `roc` must be the sender's true ROC for this SSRC.
 */
export function encryptRtp(pkt: Buffer | readonly Buffer[], key: MediaKey, roc: number): Buffer[] {
  const buf = Array.isArray(pkt) ? Buffer.concat(pkt as readonly Buffer[]) : (pkt as Buffer);
  const hl = checkedRtpHeaderLength(buf);
  const header = buf.subarray(0, hl);
  const iv = gcmIv(key.salt, rtpSsrc(buf), roc, rtpSequence(buf));
  const c = createCipheriv(algorithm(key), key.key, iv, { authTagLength: GCM_TAG_BYTES });
  c.setAAD(header);
  const ct = c.update(buf.subarray(hl));
  c.final(); // GCM is a stream mode: final() yields no bytes, only completes the tag
  return [header, ct, c.getAuthTag()];
}

/**
 * Decrypts and authenticates one SRTP-GCM packet. Uses the ROC the packet carries (it is
 * authenticated) and `rocEstimate` only when it carries none. Returns a new buffer: the same
 * header, plaintext payload. Throws PacketError on anything short, malformed or forged.
 */
export function decryptRtp(buf: Buffer, key: MediaKey, rocEstimate = 0): Buffer {
  const hl = checkedRtpHeaderLength(buf);
  need('SRTP-GCM packet (header + tag)', buf.length, hl + GCM_TAG_BYTES);
  const roc = readRoc(buf) ?? rocEstimate;
  const ssrc = rtpSsrc(buf);
  const seq = rtpSequence(buf);
  const d = createDecipheriv(algorithm(key), key.key, gcmIv(key.salt, ssrc, roc, seq), { authTagLength: GCM_TAG_BYTES });
  d.setAAD(buf.subarray(0, hl));
  d.setAuthTag(buf.subarray(buf.length - GCM_TAG_BYTES));
  const pt = d.update(buf.subarray(hl, buf.length - GCM_TAG_BYTES));
  try {
    d.final();
  } catch {
    throw new PacketError(`AES-GCM: ${buf.length}-byte packet (SSRC ${ssrc.toString(16)}, seq ${seq}, ROC ${roc}) fails authentication`);
  }
  return Buffer.concat([buf.subarray(0, hl), pt]);
}

/**
 * The sharer's media step: for every RTP packet, count its SSRC's ROC, add the secure extension
 * (frame info from `classify`, e.g. the relay's startsKeyframe on the plain packet) and encrypt.
 * RTCP passes unchanged. Run it before AuthSigner.sign and after FEC is computed.
 */
export class MediaProtector {
  private readonly rocs = new BoundedTable<number, IndexTracker>(() => new IndexTracker());

  constructor(
    private readonly key: MediaKey,
    private readonly classify?: (plain: Buffer) => FrameInfo | undefined,
  ) {}

  protect(datagram: Buffer | readonly Buffer[]): Buffer[] {
    const buf = Array.isArray(datagram) ? Buffer.concat(datagram as readonly Buffer[]) : (datagram as Buffer);
    if (isRtcp(buf)) return [buf];
    checkedRtpHeaderLength(buf); // throws PacketError before any state changes
    const tracker = this.rocs.get(rtpSsrc(buf));
    const index = Math.max(0, tracker.estimate(rtpSequence(buf)));
    tracker.commit(index);
    const roc = rocOf(index);
    const withExt = Buffer.concat(withSecureExtension(buf, this.classify?.(buf), roc));
    return encryptRtp(withExt, this.key, roc);
  }
}

/**
 * The viewer's media step: decrypts every RTP packet (throwing PacketError on failure: count and
 * drop) and removes the secure extension; RTCP passes unchanged (it is not encrypted).
 */
export class MediaUnprotector {
  private readonly rocs = new BoundedTable<number, IndexTracker>(() => new IndexTracker());

  constructor(private readonly key: MediaKey) {}

  unprotect(buf: Buffer): Buffer {
    if (isRtcp(buf)) return buf;
    checkedRtpHeaderLength(buf);
    const seq = rtpSequence(buf);
    const tracker = this.rocs.get(rtpSsrc(buf));
    const roc = readRoc(buf) ?? rocOf(Math.max(0, tracker.estimate(seq)));
    const plain = decryptRtp(buf, this.key, roc);
    tracker.commit(roc * 0x10000 + seq); // only after the tag verified (RFC 3711 §3.3.1)
    return withoutSecureExtension(plain);
  }
}

/**
 * RTP payload bytes per packet for the packetizers, so a datagram stays within
 * UDP_PAYLOAD_BUDGET (1200): 1200 − 12 (RTP header) − 12 (extension room) − 20 (auth trailer, with
 * --key) − 16 (GCM tag, with --encrypt), never more than DEFAULT_PAYLOAD_LIMIT:
 *   plain 1160, --key 1156, --encrypt 1160, both 1140.
 */
export function payloadLimitFor(opts: { auth: boolean; encrypt: boolean }): number {
  const overhead = (opts.auth ? AUTH_TRAILER_BYTES : 0) + (opts.encrypt ? GCM_TAG_BYTES : 0);
  return Math.min(DEFAULT_PAYLOAD_LIMIT, UDP_PAYLOAD_BUDGET - RTP_HEADER_ROOM - overhead);
}

/**
 * Publisher → relay authentication trailer (the diagram and rationale are in ../secure.ts).
 *
 *   RTP:  packet ‖ ROC (32) ‖ tag (128),            tag = HMAC-SHA-256(K_rtp,  packet ‖ ROC)[0..16)
 *   RTCP: compound ‖ E (1) | index (31) ‖ tag (128), tag = HMAC-SHA-256(K_rtcp, compound ‖ E|index)[0..16)
 *
 * RFC 3711 §4.2 authenticates packet ‖ ROC without sending the ROC; we send it (as RFC 4771's
 * ROC-carrying mode does) so a relay that restarts, or starts after the sharer, knows the exact
 * index of the first packet it sees instead of guessing ROC = 0 and rejecting everything once the
 * sequence number has wrapped. The RTCP part is RFC 3711 §3.4's SRTCP index and E flag, E always 0
 * (udpcast never encrypts RTCP).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { PacketError } from '../../util/errors.ts';
import { RTP_FIXED_HEADER, rtpSequence, rtpSsrc } from '../../rtp/packet.ts';
import { isRtcp } from '../rtcp.ts';
import type { AuthKeys } from './keys.ts';
import { BoundedTable, IndexTracker, ReplayWindow, rocOf } from './window.ts';

/** HMAC-SHA-256 truncated to 128 bits (SRTP's HMAC-SHA1-80 idea, with SHA-256). */
export const AUTH_TAG_BYTES = 16;
/** ROC (RTP) or E flag + SRTCP index (RTCP), before the tag. */
export const AUTH_COUNTER_BYTES = 4;
/** Everything the publisher appends and the relay strips. */
export const AUTH_TRAILER_BYTES = AUTH_COUNTER_BYTES + AUTH_TAG_BYTES;
/** RFC 3711 §3.4: the SRTCP index is 31 bits. */
export const MAX_RTCP_INDEX = 0x7fffffff;
/** RFC 3550 §6.4.1: RTCP header (4) + sender SSRC (4). */
const RTCP_MIN = 8;
const E_FLAG = 0x80000000;

export type PacketKind = 'rtp' | 'rtcp';

export type VerifyResult =
  | { ok: true; packet: Buffer; kind: PacketKind; ssrc: number; index: number }
  | { ok: false; reason: 'short' | 'format' | 'tag' | 'replay' };

function kindOf(first: Buffer): PacketKind {
  return isRtcp(first) ? 'rtcp' : 'rtp';
}

function mac(key: Buffer, chunks: readonly Buffer[], counter: Buffer): Buffer {
  const h = createHmac('sha256', key);
  for (const c of chunks) h.update(c);
  h.update(counter);
  return h.digest();
}

/**
 * Appends the trailer to a datagram given whole or as the chunk list serializeRtp/serializeRtcp
 * return. `counter` is the ROC for RTP, the SRTCP index for RTCP. Returns the chunks plus one
 * 20-byte trailer; the input is neither copied nor written.
 */
export function appendAuthTag(datagram: Buffer | readonly Buffer[], keys: AuthKeys, counter: number): Buffer[] {
  const chunks = Array.isArray(datagram) ? (datagram as readonly Buffer[]) : [datagram as Buffer];
  const length = chunks.reduce((n, c) => n + c.length, 0);
  const first = chunks.find((c) => c.length > 0) ?? Buffer.alloc(0);
  if (first.length < 2) throw new PacketError(`auth: need 2 bytes to tell RTP from RTCP, have ${first.length}`);
  const kind = kindOf(first);
  const min = kind === 'rtp' ? RTP_FIXED_HEADER : RTCP_MIN;
  if (length < min) throw new PacketError(`auth: ${kind.toUpperCase()} packet needs ${min} bytes, have ${length}`);
  const limit = kind === 'rtp' ? 0xffffffff : MAX_RTCP_INDEX;
  if (!Number.isInteger(counter) || counter < 0 || counter > limit) {
    throw new PacketError(`auth: ${kind === 'rtp' ? 'ROC' : 'SRTCP index'} ${counter} out of range 0-${limit}`);
  }
  const trailer = Buffer.allocUnsafe(AUTH_TRAILER_BYTES);
  trailer.writeUInt32BE(counter, 0); // for RTCP the E bit (top bit) stays 0: not encrypted
  const counterBytes = trailer.subarray(0, AUTH_COUNTER_BYTES);
  mac(kind === 'rtp' ? keys.rtp : keys.rtcp, chunks, counterBytes).copy(trailer, AUTH_COUNTER_BYTES, 0, AUTH_TAG_BYTES);
  return [...chunks, trailer];
}

/**
 * Checks a datagram's trailer. With `replay`, also rejects a repeated or too-old index (checked
 * before the tag, recorded only after it verifies). On success `packet` is a view of `buf`
 * without the trailer: what the relay forwards.
 */
export function verifyAuthTag(buf: Buffer, keys: AuthKeys, replay?: ReplayGuard): VerifyResult {
  if (buf.length < 2 + AUTH_TRAILER_BYTES) return { ok: false, reason: 'short' };
  if (buf[0] >> 6 !== 2) return { ok: false, reason: 'format' };
  const kind = kindOf(buf);
  const end = buf.length - AUTH_TRAILER_BYTES;
  if (end < (kind === 'rtp' ? RTP_FIXED_HEADER : RTCP_MIN)) return { ok: false, reason: 'short' };
  const packet = buf.subarray(0, end);
  const counterBytes = buf.subarray(end, end + AUTH_COUNTER_BYTES);
  const counter = counterBytes.readUInt32BE(0);
  let ssrc: number;
  let index: number;
  if (kind === 'rtp') {
    ssrc = rtpSsrc(packet);
    index = counter * 0x10000 + rtpSequence(packet);
  } else {
    if (counter & E_FLAG) return { ok: false, reason: 'format' }; // we never encrypt RTCP
    ssrc = packet.readUInt32BE(4);
    index = counter;
  }
  if (replay && !replay.check(kind, ssrc, index)) return { ok: false, reason: 'replay' };
  const expected = mac(kind === 'rtp' ? keys.rtp : keys.rtcp, [packet], counterBytes);
  if (!timingSafeEqual(expected.subarray(0, AUTH_TAG_BYTES), buf.subarray(end + AUTH_COUNTER_BYTES))) {
    return { ok: false, reason: 'tag' };
  }
  replay?.accept(kind, ssrc, index);
  return { ok: true, packet, kind, ssrc, index };
}

/** The relay's replay state for one publisher: a window per (RTP or RTCP, SSRC), bounded. */
export class ReplayGuard {
  private readonly table = new BoundedTable<string, ReplayWindow>(() => new ReplayWindow());

  check(kind: PacketKind, ssrc: number, index: number): boolean {
    const w = this.table.peek(`${kind}:${ssrc}`);
    return w ? w.check(index) : new ReplayWindow().check(index);
  }

  accept(kind: PacketKind, ssrc: number, index: number): void {
    this.table.get(`${kind}:${ssrc}`).accept(index);
  }
}

/**
 * The publisher's side: keeps each RTP SSRC's ROC (counting its own wraps) and the SRTCP index,
 * and appends the trailer. Call it last, on exactly the bytes that go on the wire.
 */
export class AuthSigner {
  private readonly rocs = new BoundedTable<number, IndexTracker>(() => new IndexTracker());
  private rtcpIndex = 0;

  constructor(private readonly keys: AuthKeys) {}

  sign(datagram: Buffer | readonly Buffer[]): Buffer[] {
    const chunks = Array.isArray(datagram) ? (datagram as readonly Buffer[]) : [datagram as Buffer];
    const first = chunks[0];
    if (!first || first.length < 2) throw new PacketError(`auth: need 2 bytes to tell RTP from RTCP, have ${first?.length ?? 0}`);
    if (kindOf(first) === 'rtcp') {
      const index = this.rtcpIndex;
      // RFC 3711 §3.4: the index must not wrap under one key; 2^31 compounds is 68 years at 1/s.
      if (index > MAX_RTCP_INDEX) throw new PacketError('auth: SRTCP index exhausted; restart the sharer for a new salt');
      this.rtcpIndex++;
      return appendAuthTag(chunks, this.keys, index);
    }
    const header = first.length >= RTP_FIXED_HEADER ? first : Buffer.concat(chunks).subarray(0, RTP_FIXED_HEADER);
    if (header.length < RTP_FIXED_HEADER) throw new PacketError(`auth: RTP packet needs 12 bytes, have ${header.length}`);
    const tracker = this.rocs.get(rtpSsrc(header));
    const index = tracker.estimate(rtpSequence(header));
    tracker.commit(index);
    return appendAuthTag(chunks, this.keys, rocOf(Math.max(index, 0)));
  }
}

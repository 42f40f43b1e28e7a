/**
 * Keys for udpcast's packet security (see ../secure.ts for the whole design and wire format).
 *
 * Two steps, so that the slow one runs once per process and never because of a packet:
 *
 *   master  = scrypt(NFC(passphrase), "udpcast v1 passphrase", N = 2^15, r = 8, p = 1) → 32 bytes
 *             (RFC 7914; 0.3-0.6 s and 32 MiB on the 2-core dev box, once at start-up)
 *   per stream, with the sharer's 16-byte random salt (HKDF-SHA-256, RFC 5869):
 *   rtpAuth   = HKDF(master, salt, "udpcast v1 rtp auth",   32)   HMAC key, publisher → relay
 *   rtcpAuth  = HKDF(master, salt, "udpcast v1 rtcp auth",  32)   HMAC key, publisher → relay
 *   mediaKey  = HKDF(master, salt, "udpcast v1 media key",  16)   AES-128-GCM key, sharer → viewers
 *   mediaSalt = HKDF(master, salt, "udpcast v1 media salt", 12)   RFC 7714 §8.1 IV salt
 *   watch     = HKDF(master, "",   "udpcast v1 watch key",  32)   viewer → relay proofs (no stream salt:
 *                                                                  a viewer has none before it subscribes)
 *
 * Why scrypt does not take the per-stream salt: the relay learns a stream's salt from a PUBLISH
 * that anyone can send. If the salt went into scrypt, every forged PUBLISH with a fresh salt would
 * cost the relay half a second of CPU and 32 MiB: a denial of service for the price of a datagram.
 * With the salt in HKDF, a new salt costs microseconds. The price: scrypt's salt is a protocol
 * constant, so one dictionary of scrypt outputs serves against every udpcast deployment. A
 * passphrase must therefore be strong on its own (say 16 random bytes in hex, `--key-file`).
 *
 * Which secret gives which key matters more than the KDF: `--key` is shared by sharer and relay,
 * so only the auth keys may come from it; `--encrypt` is shared by sharer and viewers only, and only
 * the media key may come from it. `secretsProblem` refuses configurations that break this.
 */
import { createHmac, hkdfSync, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

/** RFC 7914 cost parameters: N = 2^15 (CPU and memory cost), r = 8 (block size), p = 1. */
export const SCRYPT_N = 1 << 15;
export const SCRYPT_R = 8;
export const SCRYPT_P = 1;
/** scrypt needs 128·N·r bytes (32 MiB); Node refuses exactly at its 32 MiB default, so allow 64. */
const SCRYPT_MAXMEM = 64 * 1024 * 1024;
const SCRYPT_SALT = Buffer.from('udpcast v1 passphrase', 'utf8');
export const MASTER_KEY_BYTES = 32;
/** Per-stream salt the sharer draws at random each run and sends in the clear. */
export const STREAM_SALT_BYTES = 16;
/** AES-128 (RFC 7714 §12: AEAD_AES_128_GCM); 128 bits is ample and keeps AES-GCM fastest. */
export const MEDIA_KEY_BYTES = 16;
/** RFC 7714 §8.1: the IV salt is 96 bits. */
export const MEDIA_SALT_BYTES = 12;
export const AUTH_KEY_BYTES = 32;
/** Length of a watch proof: HMAC-SHA-256 truncated to 128 bits, like the auth tag. */
export const WATCH_PROOF_BYTES = 16;

const INFO_RTP_AUTH = 'udpcast v1 rtp auth';
const INFO_RTCP_AUTH = 'udpcast v1 rtcp auth';
const INFO_MEDIA_KEY = 'udpcast v1 media key';
const INFO_MEDIA_SALT = 'udpcast v1 media salt';
const INFO_WATCH = 'udpcast v1 watch key';
const WATCH_LABEL = Buffer.from('udpcast v1 watch proof', 'utf8');

/** The scrypt output for one passphrase. Opaque so it is not mistaken for a packet key. */
export interface MasterKey {
  readonly master: Buffer;
}

/** HMAC-SHA-256 keys for the publisher → relay authentication tags. */
export interface AuthKeys {
  readonly rtp: Buffer;
  readonly rtcp: Buffer;
}

/** AES-128-GCM key and RFC 7714 IV salt, end to end from sharer to viewers. */
export interface MediaKey {
  readonly key: Buffer;
  readonly salt: Buffer;
}

/**
 * Everything one passphrase gives for one stream. Use `.auth` of the `--key` passphrase and
 * `.media` of the `--encrypt` passphrase, never the other way round.
 */
export interface StreamKeys {
  readonly auth: AuthKeys;
  readonly media: MediaKey;
}

/** HKDF-SHA-256 (RFC 5869): extract with `salt`, expand with `info` to `length` bytes. */
export function hkdf(ikm: Buffer, salt: Buffer, info: Buffer | string, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/** The slow step: run once per passphrase per process (0.3-0.6 s measured). */
export function deriveMasterKey(passphrase: string): MasterKey {
  if (passphrase.length === 0) throw new Error('a passphrase must not be empty');
  // NFC so the same passphrase typed on two systems (composed or decomposed accents) gives one key.
  const master = scryptSync(passphrase.normalize('NFC'), SCRYPT_SALT, MASTER_KEY_BYTES, {
    N: SCRYPT_N,
    r: SCRYPT_R,
    p: SCRYPT_P,
    maxmem: SCRYPT_MAXMEM,
  });
  return { master };
}

/** The fast step: a stream's keys from the master key and the sharer's salt (microseconds). */
export function streamKeys(master: MasterKey, salt: Buffer): StreamKeys {
  if (salt.length !== STREAM_SALT_BYTES) {
    throw new Error(`stream salt is ${salt.length} bytes, must be ${STREAM_SALT_BYTES}`);
  }
  const m = master.master;
  return {
    auth: { rtp: hkdf(m, salt, INFO_RTP_AUTH, AUTH_KEY_BYTES), rtcp: hkdf(m, salt, INFO_RTCP_AUTH, AUTH_KEY_BYTES) },
    media: { key: hkdf(m, salt, INFO_MEDIA_KEY, MEDIA_KEY_BYTES), salt: hkdf(m, salt, INFO_MEDIA_SALT, MEDIA_SALT_BYTES) },
  };
}

/** Both steps; for the sharer (one salt per run) and for tests. */
export function deriveKeys(passphrase: string, salt: Buffer): StreamKeys {
  return streamKeys(deriveMasterKey(passphrase), salt);
}

/** A fresh salt for one sharer run: new keys per run, so no GCM IV ever repeats across runs. */
export function newStreamSalt(): Buffer {
  return randomBytes(STREAM_SALT_BYTES);
}

/** The `--watch-key` HMAC key; independent of any stream. */
export function deriveWatchKey(master: MasterKey): Buffer {
  return hkdf(master.master, Buffer.alloc(0), INFO_WATCH, AUTH_KEY_BYTES);
}

/**
 * A viewer's proof that it may watch: HMAC-SHA-256(watchKey, label ‖ len(cookie) ‖ cookie ‖
 * subscribe) truncated to 16 bytes. `cookie` is the relay's address cookie (so a proof is bound to
 * the viewer's address and time window and cannot be replayed from elsewhere or later);
 * `subscribe` is the SUBSCRIBE message's bytes (so it is bound to the stream name). The length
 * byte keeps the split between cookie and message unambiguous.
 */
export function watchProof(watchKey: Buffer, cookie: Buffer, subscribe: Buffer): Buffer {
  if (cookie.length > 255) throw new Error(`cookie is ${cookie.length} bytes, at most 255`);
  const h = createHmac('sha256', watchKey);
  h.update(WATCH_LABEL);
  h.update(Buffer.from([cookie.length]));
  h.update(cookie);
  h.update(subscribe);
  return h.digest().subarray(0, WATCH_PROOF_BYTES);
}

/** Constant-time check of a watch proof; false for a proof of the wrong length. */
export function verifyWatchProof(watchKey: Buffer, cookie: Buffer, subscribe: Buffer, proof: Buffer): boolean {
  if (proof.length !== WATCH_PROOF_BYTES || cookie.length > 255) return false;
  return timingSafeEqual(watchProof(watchKey, cookie, subscribe), proof);
}

/**
 * Why a set of secrets would let the relay read the pictures, or undefined when it is sound.
 * The relay holds `key` and `watchKey`; if `encrypt` equals either, it can derive the media key.
 */
export function secretsProblem(s: { key?: string; encrypt?: string; watchKey?: string }): string | undefined {
  const same = (a?: string, b?: string) => a !== undefined && b !== undefined && a.normalize('NFC') === b.normalize('NFC');
  if (same(s.encrypt, s.key)) {
    return '--encrypt must differ from --key: the relay knows --key and could decrypt the pictures';
  }
  if (same(s.encrypt, s.watchKey)) {
    return '--encrypt must differ from --watch-key: the relay knows --watch-key and could decrypt the pictures';
  }
  return undefined;
}

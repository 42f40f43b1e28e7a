import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { PacketError } from '../src/util/errors.ts';
import { parseRtp, serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { serializeRtcp } from '../src/transport/rtcp.ts';
import { DEFAULT_PAYLOAD_LIMIT, UDP_PAYLOAD_BUDGET } from '../src/defaults.ts';
import {
  appendAuthTag,
  AUTH_TRAILER_BYTES,
  AuthSigner,
  buildFrameInfoExtension,
  decryptRtp,
  deriveKeys,
  deriveMasterKey,
  deriveWatchKey,
  encryptRtp,
  estimateIndex,
  gcmIv,
  hkdf,
  IndexTracker,
  MediaProtector,
  MediaUnprotector,
  payloadLimitFor,
  readFrameInfo,
  readRoc,
  REPLAY_WINDOW,
  ReplayGuard,
  ReplayWindow,
  secretsProblem,
  streamKeys,
  verifyAuthTag,
  verifyWatchProof,
  watchProof,
  withSecureExtension,
  type AuthKeys,
  type MediaKey,
} from '../src/transport/secure.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const SALT = hex('000102030405060708090a0b0c0d0e0f');
/** A fixed master key, so most tests skip the half-second scrypt. */
const MASTER = { master: Buffer.alloc(32, 0x42) };
const KEYS = streamKeys(MASTER, SALT);
const OTHER = streamKeys({ master: Buffer.alloc(32, 0x43) }, SALT);

function rtp(seq: number, payload: Buffer, opts: { ssrc?: number; pt?: number; csrc?: number[]; ts?: number } = {}): Buffer {
  return serializeRtpToBuffer({
    padding: 0,
    marker: false,
    payloadType: opts.pt ?? 96,
    sequenceNumber: seq,
    timestamp: opts.ts ?? 1000,
    ssrc: opts.ssrc ?? 0x11223344,
    csrc: opts.csrc ?? [],
    payload,
  });
}

function flipEveryBit(buf: Buffer, check: (mutated: Buffer, bit: number) => void): void {
  for (let bit = 0; bit < buf.length * 8; bit++) {
    const m = Buffer.from(buf);
    m[bit >> 3] ^= 0x80 >> (bit & 7);
    check(m, bit);
  }
}

describe('keys: scrypt once, HKDF per stream (RFC 7914, RFC 5869)', () => {
  test('HKDF wrapper: RFC 5869 A.1 test case 1', () => {
    const okm = hkdf(Buffer.alloc(22, 0x0b), hex('000102030405060708090a0b0c'), hex('f0f1f2f3f4f5f6f7f8f9'), 42);
    assert.equal(okm.toString('hex'), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
  });

  test('deterministic for one passphrase and salt; different passphrase, different keys; pinned', () => {
    const a = deriveKeys('udpcast test passphrase', SALT);
    const b = deriveKeys('udpcast test passphrase', SALT);
    assert.deepEqual(a, b);
    // Pinned once: a change here changes the wire format (scrypt parameters, salt label or HKDF labels).
    assert.equal(deriveMasterKey('udpcast test passphrase').master.toString('hex'), '249ec784833873c1e9becf9ba1b05f056e076d7f6c39d37e20f48a7a8cf64656');
    assert.notDeepEqual(deriveKeys('udpcast test passphrasf', SALT), a);
  });

  test('the salt changes every key; the labels separate auth from media', () => {
    const other = streamKeys(MASTER, hex('ff0102030405060708090a0b0c0d0e0f'));
    for (const [x, y] of [
      [KEYS.auth.rtp, other.auth.rtp],
      [KEYS.auth.rtcp, other.auth.rtcp],
      [KEYS.media.key, other.media.key],
      [KEYS.media.salt, other.media.salt],
    ]) assert.notDeepEqual(x, y);
    assert.notDeepEqual(KEYS.auth.rtp, KEYS.auth.rtcp);
    assert.notDeepEqual(KEYS.auth.rtp.subarray(0, 16), KEYS.media.key);
    assert.equal(KEYS.auth.rtp.toString('hex'), '5b6cedb0b7b695f3adce71612daedb8e3aef0f49e0ab0b347b1824e04df7b40e');
    assert.equal(KEYS.auth.rtcp.toString('hex'), '6439e5258c7ef626277449c438df86ea3ffd60bfcfa4a7b5ad27048fa907fd79');
    assert.equal(KEYS.media.key.toString('hex'), '9b76bbee808004b8e16177918cc68e91');
    assert.equal(KEYS.media.salt.toString('hex'), '5a69b81ac157bb91a9bb0218');
    assert.throws(() => streamKeys(MASTER, Buffer.alloc(15)), /15 bytes, must be 16/);
    assert.throws(() => deriveMasterKey(''), /empty/);
  });

  test('secretsProblem: the relay must not hold the --encrypt secret', () => {
    assert.match(secretsProblem({ key: 'k', encrypt: 'k' }) ?? '', /--encrypt must differ from --key/);
    assert.match(secretsProblem({ watchKey: 'w', encrypt: 'w' }) ?? '', /--watch-key/);
    // Same text, composed vs decomposed é: one passphrase to scrypt (NFC), so also refused.
    assert.ok(secretsProblem({ key: 'caf\u00e9', encrypt: 'cafe\u0301' }));
    assert.equal(secretsProblem({ key: 'k', encrypt: 'e', watchKey: 'w' }), undefined);
    assert.equal(secretsProblem({ key: 'k', watchKey: 'k' }), undefined);
  });

  test('watch proof: bound to key, cookie and SUBSCRIBE; constant length', () => {
    const w = deriveWatchKey(MASTER);
    const cookie = Buffer.from('cookie-for-127.0.0.1:5000');
    const sub = Buffer.from('SUBSCRIBE main');
    const proof = watchProof(w, cookie, sub);
    assert.equal(proof.length, 16);
    assert.ok(verifyWatchProof(w, cookie, sub, proof));
    assert.ok(!verifyWatchProof(deriveWatchKey({ master: Buffer.alloc(32, 1) }), cookie, sub, proof));
    assert.ok(!verifyWatchProof(w, Buffer.from('cookie-for-127.0.0.1:5001'), sub, proof));
    assert.ok(!verifyWatchProof(w, cookie, Buffer.from('SUBSCRIBE mainx'), proof));
    assert.ok(!verifyWatchProof(w, cookie, sub, proof.subarray(0, 15)));
    // The cookie/message boundary is fixed by the length byte: moving a byte across it changes the proof.
    assert.ok(!verifyWatchProof(w, Buffer.from('cookie-for-127.0.0.1:500'), Buffer.from('0SUBSCRIBE main'), proof));
  });
});

describe('index estimation (RFC 3711 §3.3.1) and replay window (§3.3.2)', () => {
  test('ROC across 65535 → 0 and back', () => {
    assert.equal(estimateIndex(65535, 0), 65536); // wrapped forward: ROC 1
    assert.equal(estimateIndex(65536 + 2, 65533), 65533); // late packet from before the wrap: ROC 0
    assert.equal(estimateIndex(3 * 65536 + 100, 101), 3 * 65536 + 101);
    assert.equal(estimateIndex(5, 65530), -6); // before index 0: negative, invalid
    const t = new IndexTracker();
    assert.equal(t.estimate(65534, 7), 7 * 65536 + 65534); // first packet: the ROC it is told
    t.commit(7 * 65536 + 65534);
    const next = t.estimate(1);
    assert.equal(next, 8 * 65536 + 1);
    assert.equal(t.roc, 7); // not updated until committed
    t.commit(next);
    assert.equal(t.roc, 8);
  });

  test('window accepts reordering within its size, rejects duplicates and older', () => {
    const w = new ReplayWindow();
    w.accept(5000);
    for (const i of [4999, 5000 - REPLAY_WINDOW + 1, 5005, 5001]) {
      assert.ok(w.check(i), `index ${i} is new`);
      w.accept(i);
    }
    for (const i of [4999, 5005, 5001, 5000]) assert.ok(!w.check(i), `index ${i} is a replay`);
    assert.ok(!w.check(5005 - REPLAY_WINDOW), 'older than the window');
    assert.ok(w.check(5005 - REPLAY_WINDOW + 1));
    w.accept(5005 + 10 * REPLAY_WINDOW); // a jump clears the bitmap
    assert.ok(!w.check(5005));
    assert.ok(w.check(5005 + 10 * REPLAY_WINDOW - 1));
    assert.ok(!w.check(-1));
    assert.ok(!w.check(2 ** 48));
    assert.ok(!w.check(1.5));
  });
});

describe('publisher → relay trailer', () => {
  const pkt = rtp(0x1234, Buffer.from('an H.264 payload, say'));

  test('golden layout: packet ‖ ROC ‖ HMAC-SHA-256(K_rtp, packet ‖ ROC)[0..16)', () => {
    const out = Buffer.concat(appendAuthTag(pkt, KEYS.auth, 0x01020304));
    assert.equal(out.length, pkt.length + AUTH_TRAILER_BYTES);
    assert.deepEqual(out.subarray(0, pkt.length), pkt);
    assert.deepEqual(out.subarray(pkt.length, pkt.length + 4), hex('01020304'));
    const tag = createHmac('sha256', KEYS.auth.rtp).update(pkt).update(hex('01020304')).digest().subarray(0, 16);
    assert.deepEqual(out.subarray(pkt.length + 4), tag);
  });

  test('verifies, returns a view without the trailer, and any single bit flip fails', () => {
    const out = Buffer.concat(appendAuthTag(pkt, KEYS.auth, 0));
    const r = verifyAuthTag(out, KEYS.auth);
    assert.ok(r.ok);
    assert.deepEqual(r.packet, pkt);
    assert.equal(r.packet.buffer, out.buffer, 'a view, not a copy');
    assert.equal(r.packet.byteOffset, out.byteOffset);
    assert.equal(r.index, 0x1234);
    assert.equal(r.ssrc, 0x11223344);
    flipEveryBit(out, (m, bit) => assert.equal(verifyAuthTag(m, KEYS.auth).ok, false, `bit ${bit}`));
    assert.deepEqual(verifyAuthTag(out, OTHER.auth), { ok: false, reason: 'tag' });
  });

  test('RTCP: SRTCP index with E = 0, its own key, replay per index', () => {
    const compound = serializeRtcp([{ type: 'bye', ssrcs: [0x11223344] }]);
    const signer = new AuthSigner(KEYS.auth);
    const a = Buffer.concat(signer.sign(compound));
    const b = Buffer.concat(signer.sign(compound));
    assert.deepEqual(a.subarray(compound.length, compound.length + 4), hex('00000000'));
    assert.deepEqual(b.subarray(compound.length, compound.length + 4), hex('00000001'));
    const tag = createHmac('sha256', KEYS.auth.rtcp).update(compound).update(hex('00000001')).digest().subarray(0, 16);
    assert.deepEqual(b.subarray(compound.length + 4), tag);
    const guard = new ReplayGuard();
    assert.ok(verifyAuthTag(a, KEYS.auth, guard).ok);
    assert.ok(verifyAuthTag(b, KEYS.auth, guard).ok);
    assert.deepEqual(verifyAuthTag(b, KEYS.auth, guard), { ok: false, reason: 'replay' });
    // With the RTP key instead, it does not verify: RTP and RTCP tags cannot stand in for each other.
    assert.deepEqual(verifyAuthTag(a, { rtp: KEYS.auth.rtp, rtcp: KEYS.auth.rtp }), { ok: false, reason: 'tag' });
    const e = Buffer.from(a);
    e[compound.length] |= 0x80;
    assert.deepEqual(verifyAuthTag(e, KEYS.auth), { ok: false, reason: 'format' });
  });

  test('replay: a repeated packet fails, a forgery does not move the window', () => {
    const guard = new ReplayGuard();
    const first = Buffer.concat(appendAuthTag(rtp(10, Buffer.from('x')), KEYS.auth, 0));
    assert.ok(verifyAuthTag(first, KEYS.auth, guard).ok);
    assert.deepEqual(verifyAuthTag(first, KEYS.auth, guard), { ok: false, reason: 'replay' });
    const forged = Buffer.concat(appendAuthTag(rtp(10 + 5 * REPLAY_WINDOW, Buffer.from('x')), OTHER.auth, 0));
    assert.deepEqual(verifyAuthTag(forged, KEYS.auth, guard), { ok: false, reason: 'tag' });
    assert.ok(verifyAuthTag(Buffer.concat(appendAuthTag(rtp(9, Buffer.from('x')), KEYS.auth, 0)), KEYS.auth, guard).ok);
    // Same seq under the next ROC is a different packet index.
    assert.ok(verifyAuthTag(Buffer.concat(appendAuthTag(rtp(10, Buffer.from('x')), KEYS.auth, 1)), KEYS.auth, guard).ok);
  });

  test('the ROC travels with the packet: a fresh relay verifies ROC 5, a rewritten ROC fails', () => {
    const out = Buffer.concat(appendAuthTag(pkt, KEYS.auth, 5));
    const r = verifyAuthTag(out, KEYS.auth, new ReplayGuard());
    assert.ok(r.ok && r.index === 5 * 65536 + 0x1234);
    const moved = Buffer.from(out);
    moved.writeUInt32BE(6, pkt.length);
    assert.deepEqual(verifyAuthTag(moved, KEYS.auth), { ok: false, reason: 'tag' });
  });

  test('AuthSigner counts the ROC across 65535 → 0 per SSRC', () => {
    const signer = new AuthSigner(KEYS.auth);
    const rocs = [65534, 65535, 0, 1].map((seq) => {
      const out = Buffer.concat(signer.sign(rtp(seq, Buffer.from('p'))));
      return out.readUInt32BE(out.length - AUTH_TRAILER_BYTES);
    });
    assert.deepEqual(rocs, [0, 0, 1, 1]);
    const fec = Buffer.concat(signer.sign(rtp(3, Buffer.from('p'), { ssrc: 0x46454300 })));
    assert.equal(fec.readUInt32BE(fec.length - AUTH_TRAILER_BYTES), 0, 'another SSRC has its own ROC');
  });

  test('short and malformed inputs give a failure, not an exception', () => {
    assert.deepEqual(verifyAuthTag(Buffer.alloc(0), KEYS.auth), { ok: false, reason: 'short' });
    assert.deepEqual(verifyAuthTag(Buffer.alloc(21), KEYS.auth), { ok: false, reason: 'short' });
    assert.deepEqual(verifyAuthTag(Buffer.alloc(40), KEYS.auth), { ok: false, reason: 'format' });
    const rtpShort = Buffer.alloc(11 + AUTH_TRAILER_BYTES);
    rtpShort[0] = 0x80;
    assert.deepEqual(verifyAuthTag(rtpShort, KEYS.auth), { ok: false, reason: 'short' });
    assert.throws(() => appendAuthTag(Buffer.from([0x80, 96, 0]), KEYS.auth, 0), PacketError);
    assert.throws(() => appendAuthTag(pkt, KEYS.auth, -1), PacketError);
  });
});

describe('AES-GCM media, RFC 7714', () => {
  // RFC 7714 §16: one RTP packet, header 8040f17b 8041f8d3 5501a0b2 (seq 0xf17b, SSRC 0x5501a0b2),
  // payload "Gallia est omnis divisa in partes tres", ROC 0, salt "Quid pro quo".
  const header = hex('8040f17b 8041f8d3 5501a0b2');
  const plain = Buffer.concat([header, Buffer.from('Gallia est omnis divisa in partes tres', 'ascii')]);
  const rfcSalt = Buffer.from('Quid pro quo', 'ascii');
  const k128: MediaKey = { key: hex('000102030405060708090a0b0c0d0e0f'), salt: rfcSalt };
  const k256: MediaKey = { key: hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'), salt: rfcSalt };
  const srtp128 = Buffer.concat([
    header,
    hex('f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833'),
    hex('899d7f27 beb16a91 52cf765e e4390cce'),
  ]);
  const srtp256 = Buffer.concat([
    header,
    hex('32b1de78 a822fe12 ef9f78fa 332e33aa b1801238 9a58e2f3 b50b2a02 76ffae0f 1ba63799 b87b7aa3 db36dfff'),
    hex('d6b0f9bb 7878d7a7 6c13'),
  ]);

  test('§8.1 IV and §16.1.1 / §16.2.1 encryption, byte for byte; decryption back', () => {
    assert.deepEqual(gcmIv(rfcSalt, 0x5501a0b2, 0, 0xf17b), hex('51753c6580c2726f20718414'));
    assert.deepEqual(Buffer.concat(encryptRtp(plain, k128, 0)), srtp128);
    assert.deepEqual(Buffer.concat(encryptRtp(plain, k256, 0)), srtp256);
    assert.deepEqual(decryptRtp(srtp128, k128, 0), plain);
    assert.deepEqual(decryptRtp(srtp256, k256, 0), plain);
  });

  test('header byte-identical (a view), wrong key or ROC and every bit flip throw PacketError', () => {
    const parts = encryptRtp(plain, k128, 0);
    assert.equal(parts[0].buffer, plain.buffer, 'header is a view of the input');
    assert.throws(() => decryptRtp(srtp128, { key: hex('ff'.repeat(16)), salt: rfcSalt }, 0), PacketError);
    assert.throws(() => decryptRtp(srtp128, k128, 1), /fails authentication/);
    flipEveryBit(srtp128, (m, bit) => assert.throws(() => decryptRtp(m, k128, 0), PacketError, `bit ${bit}`));
    assert.throws(() => decryptRtp(srtp128.subarray(0, 27), k128, 0), PacketError);
  });

  test('zeros in, no zeros out: the ciphertext shows no run of the plaintext', () => {
    const out = Buffer.concat(encryptRtp(rtp(1, Buffer.alloc(1000)), KEYS.media, 0));
    const body = out.subarray(12, out.length - 16);
    assert.equal(body.length, 1000);
    assert.equal(body.indexOf(Buffer.alloc(8)), -1);
    // Same payload, next packet: a different keystream (the IV moved with the sequence number).
    const next = Buffer.concat(encryptRtp(rtp(2, Buffer.alloc(1000)), KEYS.media, 0));
    assert.notDeepEqual(next.subarray(12, 44), out.subarray(12, 44));
  });

  test('frame info extension: golden bytes, readable on the encrypted packet', () => {
    const ext = buildFrameInfoExtension({ keyframeStart: true, frameStart: true }, 0x01020304);
    assert.equal(ext.profile, 0xbede);
    // id 1 L=0 flags=0b11 | id 2 L=3 ROC | one byte of padding: 8 bytes, + 4 = the 12 reserved.
    assert.deepEqual(ext.data, hex('10 03 23 01020304 00'));
    const plainPkt = rtp(7, hex('65 88 84 00'), { ssrc: 0xcafe });
    const p = new MediaProtector(KEYS.media, () => ({ keyframeStart: true, frameStart: true }));
    const wire = Buffer.concat(p.protect(plainPkt));
    assert.deepEqual(readFrameInfo(wire), { keyframeStart: true, frameStart: true });
    assert.equal(readRoc(wire), 0);
    const parsed = parseRtp(wire);
    assert.equal(parsed.sequenceNumber, 7);
    assert.equal(parsed.ssrc, 0xcafe);
    assert.equal(wire.length, plainPkt.length + 12 + 16);
    assert.equal(readFrameInfo(plainPkt), undefined);
    const bare = Buffer.concat(withSecureExtension(plainPkt, undefined, 9));
    assert.equal(readFrameInfo(bare), undefined);
    assert.equal(readRoc(bare), 9);
  });

  test('protect / unprotect across 65535 → 0; a viewer joining at ROC 3 decrypts at once', () => {
    const p = new MediaProtector(KEYS.media);
    const v = new MediaUnprotector(KEYS.media);
    const seqs = [65534, 65535, 0, 1];
    for (const seq of seqs) {
      const plainPkt = rtp(seq, Buffer.from(`frame ${seq}`));
      const wire = Buffer.concat(p.protect(plainPkt));
      assert.equal(readRoc(wire), seq >= 65534 ? 0 : 1);
      assert.deepEqual(v.unprotect(wire), plainPkt);
    }
    const late = new MediaProtector(KEYS.media);
    for (let i = 0; i < 3 * 65536; i += 1000) late.protect(rtp(i % 65536, Buffer.from('.')));
    const pkt3 = rtp(5, Buffer.from('at ROC 3'));
    const wire3 = Buffer.concat(late.protect(pkt3));
    assert.equal(readRoc(wire3), 3);
    assert.deepEqual(new MediaUnprotector(KEYS.media).unprotect(wire3), pkt3);
    assert.throws(() => new MediaUnprotector(OTHER.media).unprotect(wire3), PacketError);
    assert.throws(() => v.unprotect(pkt3), PacketError, 'plain RTP is refused when encrypting');
  });
});

describe('datagram budget', () => {
  test('payloadLimitFor: 1160 plain, 1156 --key, 1160 --encrypt, 1140 both', () => {
    assert.equal(payloadLimitFor({ auth: false, encrypt: false }), DEFAULT_PAYLOAD_LIMIT);
    assert.equal(payloadLimitFor({ auth: true, encrypt: false }), 1156);
    assert.equal(payloadLimitFor({ auth: false, encrypt: true }), 1160);
    assert.equal(payloadLimitFor({ auth: true, encrypt: true }), 1140);
  });

  test('a packet at the limit, protected and signed, is exactly the 1200-byte budget', () => {
    const pkt = rtp(1, Buffer.alloc(payloadLimitFor({ auth: true, encrypt: true }), 7));
    const wire = Buffer.concat(new AuthSigner(KEYS.auth).sign(new MediaProtector(KEYS.media, () => ({ keyframeStart: false, frameStart: true })).protect(pkt)));
    assert.equal(wire.length, UDP_PAYLOAD_BUDGET);
  });
});

describe('properties', () => {
  const packet = fc
    .record({
      seq: fc.integer({ min: 0, max: 0xffff }),
      ssrc: fc.integer({ min: 0, max: 0xffffffff }),
      pt: fc.constantFrom(96, 26, 127),
      ts: fc.integer({ min: 0, max: 0xffffffff }),
      csrc: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 3 }),
      payload: fc.uint8Array({ maxLength: 1200 }),
    })
    .map((r) => rtp(r.seq, Buffer.from(r.payload), { ssrc: r.ssrc, pt: r.pt, csrc: r.csrc, ts: r.ts }));

  test('random packets: sharer → relay → viewer gives back the same bytes; inputs untouched', () => {
    fc.assert(
      fc.property(packet, fc.boolean(), (pkt, key) => {
        const copy = Buffer.from(pkt);
        const protectedParts = new MediaProtector(KEYS.media, () => ({ keyframeStart: key, frameStart: true })).protect(pkt);
        const snapshot = protectedParts.map((b) => Buffer.from(b));
        const wire = Buffer.concat(new AuthSigner(KEYS.auth).sign(protectedParts));
        assert.deepEqual(protectedParts, snapshot);
        const wireCopy = Buffer.from(wire);
        const r = verifyAuthTag(wire, KEYS.auth, new ReplayGuard());
        assert.ok(r.ok);
        assert.deepEqual(readFrameInfo(r.packet)?.keyframeStart, key);
        assert.deepEqual(new MediaUnprotector(KEYS.media).unprotect(r.packet), pkt);
        assert.deepEqual(pkt, copy);
        assert.deepEqual(wire, wireCopy);
      }),
      { numRuns: 300 },
    );
  });

  test('random bytes: verify only fails, decrypt only throws PacketError, nothing is written', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), fc.boolean(), (bytes, asRtp) => {
        const buf = Buffer.from(bytes);
        if (asRtp && buf.length > 0) buf[0] = 0x80 | (buf[0] & 0x3f); // RTP-shaped: version 2
        const copy = Buffer.from(buf);
        const r = verifyAuthTag(buf, KEYS.auth, new ReplayGuard());
        assert.equal(r.ok, false);
        for (const f of [() => decryptRtp(buf, KEYS.media, 0), () => new MediaUnprotector(KEYS.media).unprotect(buf), () => readFrameInfo(buf)]) {
          try {
            f();
          } catch (e) {
            assert.ok(e instanceof PacketError, `not a PacketError: ${e}`);
          }
        }
        assert.deepEqual(buf, copy);
      }),
      { numRuns: 2000 },
    );
  });

  test('the trailer binds the packet: changing any byte of a signed packet fails', () => {
    const keys: AuthKeys = KEYS.auth;
    fc.assert(
      fc.property(packet, fc.nat(), fc.integer({ min: 1, max: 255 }), (pkt, at, x) => {
        const wire = Buffer.concat(appendAuthTag(pkt, keys, 0));
        wire[at % wire.length] ^= x;
        assert.equal(verifyAuthTag(wire, keys).ok, false);
      }),
      { numRuns: 500 },
    );
  });
});

/**
 * The relay's own SRTP for browsers (relay/webrtc/srtp.ts: AES-CM with HMAC-SHA1-80, RFC 3711, and
 * AEAD_AES_128_GCM, RFC 7714), judged by werift's SRTP session decrypting what it wrote: header,
 * extensions, payload and the rollover of the sequence number, repairs from before the wrap
 * included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, SrtpSession } from 'werift';
import { SrtpCtrSender, SrtpGcmSender, rtpHeader, type RtpToSend, type SrtpSender } from '../src/relay/webrtc/srtp.ts';

const PROFILES = [
  { name: 'AES-CM + HMAC-SHA1-80', profile: ProtectionProfileAes128CmHmacSha1_80, saltBytes: 14 },
  { name: 'AEAD_AES_128_GCM', profile: ProtectionProfileAeadAes128Gcm, saltBytes: 12 },
] as const;

/**
 * The relay's sender and the browser's side (werift's session, with the relay's master keys as the
 * remote ones). werift derives the session keys (RFC 3711 §4.3); the relay's sender gets those.
 */
function pair(profile: (typeof PROFILES)[number]): { s: SrtpSender; r: SrtpSession } {
  const key = randomBytes(16);
  const salt = randomBytes(profile.saltBytes);
  const other = () => ({ key: randomBytes(16), salt: randomBytes(profile.saltBytes) });
  const o = other();
  const local = new SrtpSession({ keys: { localMasterKey: key, localMasterSalt: salt, remoteMasterKey: o.key, remoteMasterSalt: o.salt }, profile: profile.profile });
  const r = new SrtpSession({ keys: { localMasterKey: o.key, localMasterSalt: o.salt, remoteMasterKey: key, remoteMasterSalt: salt }, profile: profile.profile });
  const c = (local as unknown as { localContext: { cipher: { srtpSessionKey: Buffer; srtpSessionSalt: Buffer; srtpSessionAuthTag?: Buffer } } }).localContext.cipher;
  const s = profile.profile === ProtectionProfileAeadAes128Gcm ? new SrtpGcmSender(c.srtpSessionKey, c.srtpSessionSalt) : new SrtpCtrSender(c.srtpSessionKey, c.srtpSessionSalt, c.srtpSessionAuthTag!);
  return { s, r };
}

const packet = (seq: number, extensions: RtpToSend['extensions'] = []): RtpToSend => ({
  marker: seq % 2 === 0, payloadType: 102, sequenceNumber: seq, timestamp: 0xfffff000 + seq, ssrc: 0x1234abcd, extensions, payload: Buffer.from(`picture ${seq} `.repeat(40)),
});

for (const profile of PROFILES) {
  test(`${profile.name}: what the relay encrypts, werift decrypts: header and extensions as sent, payload back`, () => {
    const { s, r } = pair(profile);
    const p = packet(1000, [{ id: 1, payload: Buffer.from('0') }, { id: 3, payload: Buffer.from([0x12, 0x34]) }]);
    const plain = r.decrypt(Buffer.concat(s.protect(p, true)));
    const header = rtpHeader(p);
    assert.deepEqual(plain.subarray(0, header.length), header);
    assert.deepEqual(plain.subarray(header.length), p.payload);
    // A changed byte anywhere fails authentication.
    const bad = Buffer.concat(s.protect(packet(1001), true));
    bad[5] ^= 1;
    assert.throws(() => r.decrypt(bad));
  });

  test(`${profile.name}: across the wrap of the sequence number (the rollover counter), and a repair from before it`, () => {
    const { s, r } = pair(profile);
    for (const seq of [65533, 65534, 65535, 0, 1, 2]) {
      const plain = r.decrypt(Buffer.concat(s.protect(packet(seq), true)));
      assert.deepEqual(plain.subarray(12), packet(seq).payload, `packet ${seq}`);
    }
    // 65535 again, asked for after the wrap: sent under the counter it had.
    const again = r.decrypt(Buffer.concat(s.protect(packet(65535), false)));
    assert.deepEqual(again.subarray(12), packet(65535).payload);
    const next = r.decrypt(Buffer.concat(s.protect(packet(3), true)));
    assert.deepEqual(next.subarray(12), packet(3).payload);
  });

  test(`${profile.name}: full picture packets (keystream made ahead for AES-CM) across the wrap, with a longer one, a repair and a sound-sized one among them`, () => {
    const { s, r } = pair(profile);
    const full = (seq: number, bytes = 1160): RtpToSend => ({ ...packet(seq), payload: Buffer.alloc(bytes, seq & 0xff) });
    let seq = 65_400;
    for (let i = 0; i < 300; i++, seq = (seq + 1) & 0xffff) {
      const bytes = i === 150 ? 1400 : i === 151 ? 90 : 1160;
      const plain = r.decrypt(Buffer.concat(s.protect(full(seq, bytes), true)));
      assert.deepEqual(plain.subarray(12), full(seq, bytes).payload, `packet ${seq}`);
      if (i === 200) {
        const back = (seq - 40) & 0xffff; // asked for again: made for itself
        assert.deepEqual(r.decrypt(Buffer.concat(s.protect(full(back), false))).subarray(12), full(back).payload, `repair of ${back}`);
      }
    }
  });
}

/**
 * udpcast packet security: publisher authentication at the relay (`--key`) and end-to-end media
 * encryption (`--encrypt`). SRTP-like (RFC 3711, RFC 7714) but our own format. Pure functions and
 * small state objects; the sharer, relay and viewer wire them to their sockets.
 *
 * ## Who knows what
 *
 *   secret        given to              keys derived from it       used for
 *   --key K       sharer, relay         auth.rtp, auth.rtcp        trailer on every publisher datagram
 *   --encrypt E   sharer, viewers       media.key, media.salt      AES-GCM of every RTP payload
 *   --watch-key W relay, viewers        watch                      viewers' SUBSCRIBE proofs
 *
 * The relay never holds E, so it cannot decrypt pictures even though it verifies the publisher;
 * E must differ from K and W (secretsProblem). A relay run with `--key` alone sees plain media.
 *
 * ## Keys (keys.ts)
 *
 *   master = scrypt(passphrase, "udpcast v1 passphrase", N=2^15, r=8, p=1)   once per process
 *   keys   = HKDF-SHA-256(master, stream salt, label)                        per stream, cheap
 *
 * The stream salt is 16 random bytes the sharer draws on every run and sends in the clear in its
 * PUBLISH (relay) and the relay repeats in its ACK (viewers): wire proposal for control.ts,
 * UDPC application data
 *
 *    PUBLISH: name length (1) ‖ name ‖ salt length (1) = 16 ‖ salt (16) ‖ zero padding to 32 bits
 *    ACK:     name length (1) ‖ name ‖ state (1) ‖ salt length (1) ‖ salt (0 or 16) ‖ padding
 *
 * (salt length 0 = no security; receivers that predate it see the bytes as padding).
 *
 * ## Publisher → relay trailer (auth.ts), on every RTP and RTCP datagram the sharer sends
 *
 *    +---------------------------------------------------------------+
 *    |   RTP packet, or RTCP compound, exactly as it goes on the     |
 *    |   wire (for RTP with --encrypt: the SRTP-GCM packet below)    |
 *    +---------------------------------------------------------------+
 *    |  RTP: ROC (32)  /  RTCP: |E=0| SRTCP index (31)  (RFC 3711 §3.4)|
 *    +---------------------------------------------------------------+
 *    |          tag: HMAC-SHA-256(K, packet ‖ previous 4 bytes)      |
 *    |          truncated to 128 bits (K = auth.rtp or auth.rtcp)    |
 *    +---------------------------------------------------------------+
 *
 * The relay checks the index against a 1024-packet replay window per SSRC (window.ts, RFC 3711
 * §3.3.2; index = ROC·2^16 + SEQ for RTP, the SRTCP index for RTCP), then the tag in constant
 * time, and forwards a view without the 20 trailer bytes (viewers have no K).
 *
 * ## Media (media.ts), RFC 7714 AEAD_AES_128_GCM on every RTP packet (media and FEC)
 *
 *    +---------------------------------------------------------------+
 *    | RTP header (V..SSRC, CSRCs) in the clear                      |  AAD
 *    | extension 0xBEDE: id 1 frame info (1), id 2 ROC (4) — clear   |  AAD
 *    +---------------------------------------------------------------+
 *    | ciphertext of payload ‖ padding (same length)                 |
 *    +---------------------------------------------------------------+
 *    | GCM tag (128)                                                 |
 *    +---------------------------------------------------------------+
 *    IV = media.salt XOR (0x0000 ‖ SSRC ‖ ROC ‖ SEQ)     (RFC 7714 §8.1)
 *
 * RTCP is never encrypted (it carries no pictures), only authenticated toward the relay.
 * Nonce uniqueness: within one run (SSRC, ROC, SEQ) never repeats for 2^48 packets per SSRC; every
 * run draws a new salt, hence new keys, so a restart that reuses an SSRC still gets fresh IVs.
 *
 * ## Sharer order
 *   packetize → FEC (over plain packets) → MediaProtector.protect → AuthSigner.sign → socket
 * ## Relay: verifyAuthTag(datagram, streamKeys(master, salt).auth, guard) → forward result.packet;
 *   keyframe cache: readFrameInfo(packet)?.keyframeStart ?? startsKeyframe(packet)
 * ## Viewer: MediaUnprotector.unprotect(datagram) → the sharer's plain packet → FEC, jitter, depacketize
 */
export * from './secure/keys.ts';
export * from './secure/window.ts';
export * from './secure/auth.ts';
export * from './secure/media.ts';

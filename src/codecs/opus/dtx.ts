/**
 * Silence not sent (DTX, RFC 7587 §3.1.3), decided from the Opus packets themselves, so it works
 * with any libopus (FFmpeg's `-dtx` option is recent; Debian 12's FFmpeg 5.1 has none).
 *
 * libopus codes a frame of digital silence (every sample zero: a muted desktop, a paused video,
 * the gaps of `--audio test`) as its TOC byte and the two bytes `ff fe` whatever the bitrate,
 * frame length or channel count (measured with FFmpeg 5.1's libopus, 10 and 20 ms, mono and
 * stereo). The gate follows libopus's own DTX timing (silk/define.h: NB_SPEECH_FRAMES_BEFORE_DTX,
 * 200 ms; MAX_CONSECUTIVE_DTX, 400 ms): the first DTX_HANGOVER_MS of a silence are sent, then one
 * packet every DTX_KEEPALIVE_MS, so a viewer knows the sound goes on; the first packet of sound
 * after it carries the RTP marker bit (RFC 7587 §4.1). A packet of 2 bytes or less is never sent:
 * that is how libopus's own DTX says "need not be transmitted" (the opus_encode() documentation).
 */
import { OPUS_RATE, opusPacketSamples } from './opus.ts';

/** Silence sent at its start before packets are left out (libopus: 10 frames of 20 ms). */
export const DTX_HANGOVER_MS = 200;
/** In a silence left out, one packet is still sent this often (libopus: 20 frames of 20 ms). */
export const DTX_KEEPALIVE_MS = 400;

/**
 * With DTX on, libopus marks a silent frame by a packet this short (its TOC and at most one more
 * byte: "a return value of 2 bytes or less means the packet need not be transmitted", the
 * opus_encode() documentation); RFC 7587 §3.1.3 lets the sender leave such packets out.
 */
export const OPUS_DTX_MAX_BYTES = 2;

/** A packet libopus made of digital silence: one frame (code 0), its bytes `ff fe`. */
export function isOpusSilence(packet: Buffer): boolean {
  return packet.length === 3 && (packet[0] & 0x03) === 0 && packet[1] === 0xff && packet[2] === 0xfe;
}

export type DtxDecision = 'send' | 'skip';

export class DtxGate {
  /** Sound (in 48 kHz samples) of the silence so far, and since the last silent packet sent. */
  private silent = 0;
  private sinceSent = 0;

  /** `enabled` false: every packet is sent but those libopus itself marked as not to be (<= 2 bytes). */
  constructor(private readonly enabled = true) {}

  /** Whether to send `packet`, the next Opus packet in capture order. */
  decide(packet: Buffer): DtxDecision {
    if (packet.length <= OPUS_DTX_MAX_BYTES) return 'skip';
    if (!this.enabled || !isOpusSilence(packet)) {
      this.silent = 0;
      this.sinceSent = 0;
      return 'send';
    }
    const samples = opusPacketSamples(packet);
    this.silent += samples;
    if (this.silent <= (DTX_HANGOVER_MS * OPUS_RATE) / 1000) return 'send';
    this.sinceSent += samples;
    if (this.sinceSent < (DTX_KEEPALIVE_MS * OPUS_RATE) / 1000) return 'skip';
    this.sinceSent = 0;
    return 'send';
  }
}

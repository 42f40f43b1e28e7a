/**
 * The sharer's sound on the viewer's side (issue 15): Opus packets (RFC 7587), bare or inside RED
 * (RFC 2198), taken in the order of their RTP timestamps. Each packet handed on is placed on the
 * picture's RTP clock through the two sources' SRs: one NTP instant, each source's timestamp at it
 * (RFC 3550 §6.4.1), so a recording lines sound and picture up as the sharer captured them.
 *
 * No jitter buffer holds the sound back: a packet late enough to arrive after a newer one is late
 * for playing too. What RED repeats fills a hole the moment the next packet comes; a hole
 * nothing fills is marked, packet by packet, with an Opus packet whose one frame is empty (RFC 6716
 * §3.2.1: a decoder treats a frame of length 0 as missing and conceals it), so every decoder
 * downstream (ffplay's, a recording's player) conceals it and the sound keeps its length and
 * stays in step with the picture. Holes longer than AUDIO_CONCEAL_MAX_MS (the sharer paused, the
 * network went away) are left as they are: the next packet's time says where the sound resumes.
 * Silence the sharer did not send (DTX: no sequence number missing, the marker bit on the packet
 * after it) is marked the same way, up to AUDIO_SILENCE_FILL_MS, so the decoder makes its comfort
 * noise and a player that plays packets back to back does not pull the sound ahead of the picture.
 */
import { OPUS_RATE, opusPacketSamples } from '../codecs/opus/opus.ts';
import { parseRed, type RedBlock } from '../codecs/opus/red.ts';
import { AUDIO_CONCEAL_MAX_MS, AUDIO_SILENCE_FILL_MS, PT_OPUS, PT_RED, VIDEO_CLOCK_RATE } from '../defaults.ts';
import type { RtpPacket } from '../rtp/packet.ts';
import { seqDiff, tsDiff, TS_MOD } from '../rtp/seq.ts';
import { ntpToMs } from '../transport/ntp.ts';
import { unlessMalformed } from '../util/errors.ts';

/** A sender's clock mapping from its latest SR. */
export interface SenderClock {
  ntpSec: number;
  ntpFrac: number;
  rtpTimestamp: number;
}

export interface ReceivedAudio {
  /** One Opus packet (a concealment mark: its TOC byte alone). */
  data: Buffer;
  ssrc: number;
  /** Its RTP timestamp (48 kHz). */
  timestamp: number;
  /** The picture's RTP timestamp (90 kHz) of the instant its first sample was captured. */
  videoTimestamp: number;
  /** A mark for sound that never came, for the decoder to conceal. */
  concealed: boolean;
}

export interface AudioCounters {
  /** Opus packets handed on (received or recovered; not the concealment marks). */
  packets: number;
  /** Sequence numbers never seen: sound packets the network lost, before any repair. */
  lost: number;
  /** Packets that brought nothing new: duplicates, stragglers, copies of sound already handed on. */
  late: number;
  /** Opus packets taken from a later packet's RED copy: sound the network lost and RED gave back. */
  recovered: number;
  /** Opus packets missing for good, each marked for the decoder to conceal (a packet's length each). */
  concealed: number;
  /** Holes not marked: longer than AUDIO_CONCEAL_MAX_MS (AUDIO_SILENCE_FILL_MS for silence). */
  gaps: number;
  /** Opus packets of silence the sharer did not send (DTX), marked for the decoder's comfort noise. */
  silence: number;
  /** Packets dropped because no SR has yet mapped the sound's clock or the picture's. */
  unsynced: number;
  /** RED payloads or Opus packets that could not be read. */
  malformed: number;
}

/** What the sound looks like now, for dashboards and --stats-json. */
export interface AudioReport {
  /** RFC 3550 §6.4.1 interarrival jitter of the sound packets, in ms (0 before two in sequence). */
  jitterMs: number;
  /** Capture to arrival of the latest sound packet, on the sharer's clock mapped by its SR. */
  latencyMs?: number;
}

export class AudioReceiver {
  readonly counters: AudioCounters = { packets: 0, lost: 0, late: 0, recovered: 0, concealed: 0, gaps: 0, silence: 0, unsynced: 0, malformed: 0 };
  private ssrc?: number;
  private lastSeq?: number;
  /** The timestamp the next Opus packet is due at: the end of the last one handed on. */
  private nextTs?: number;
  /** RFC 3550 A.8 jitter, in 48 kHz ticks, and the previous packet's transit. */
  private jitter = 0;
  private lastTransit?: number;
  private latencyMs?: number;

  get report(): AudioReport {
    return { jitterMs: (this.jitter * 1000) / OPUS_RATE, latencyMs: this.latencyMs };
  }

  /**
   * One sound RTP packet (PT_OPUS or PT_RED) arrived at `nowMs` (the wall clock), with the latest
   * SRs of its source and of the picture being followed: the Opus packets it brings that were not
   * handed on yet, oldest first, on the picture's clock, with concealment marks for any hole
   * before them. Nothing, when it brings nothing new (counted).
   */
  /** Whether any sound came, placed on the picture's clock or not (its sender report may come later). */
  get heard(): boolean {
    return this.ssrc !== undefined;
  }

  push(pkt: RtpPacket, audioSr: SenderClock | undefined, videoSr: SenderClock | undefined, nowMs = Date.now()): ReceivedAudio[] {
    if (pkt.ssrc !== this.ssrc) {
      // A new sound source (the sharer restarted): its numbers and times start anywhere.
      this.ssrc = pkt.ssrc;
      this.lastSeq = undefined;
      this.nextTs = undefined;
      this.lastTransit = undefined;
      this.jitter = 0;
    }
    let afterSilence = false;
    let newer = true;
    if (this.lastSeq === undefined) this.lastSeq = pkt.sequenceNumber;
    else {
      const d = seqDiff(this.lastSeq, pkt.sequenceNumber);
      afterSilence = d === 1 && pkt.marker;
      newer = d > 0;
      if (d > 0) {
        this.counters.lost += d - 1;
        this.lastSeq = pkt.sequenceNumber;
        this.arrival(pkt.timestamp, nowMs);
      }
    }
    if (!newer) {
      // A duplicate, or a straggler behind a newer packet: the sound after it is handed on already
      // (and whatever it carried came as RED's copy in that one, or was marked as missing).
      this.counters.late++;
      return [];
    }
    const blocks: RedBlock[] | undefined =
      pkt.payloadType === PT_RED
        ? unlessMalformed(() => parseRed(pkt.payload, pkt.timestamp), undefined)
        : [{ payloadType: PT_OPUS, timestamp: pkt.timestamp, data: pkt.payload, primary: true }];
    if (!blocks) {
      this.counters.malformed++;
      return [];
    }
    const out: ReceivedAudio[] = [];
    let fresh = false;
    for (const b of blocks) {
      if (b.payloadType !== PT_OPUS) continue;
      const samples = unlessMalformed(() => opusPacketSamples(b.data), 0);
      if (samples === 0) {
        this.counters.malformed++;
        continue;
      }
      // The first packet of a source: its copies are of sound from before this viewer came.
      if (this.nextTs === undefined && !b.primary) continue;
      if (this.nextTs !== undefined) {
        const ahead = tsDiff(this.nextTs, b.timestamp);
        // A newer packet whose time went back further than a hole could be: the sharer's clock
        // stepped back (its capture times make the timestamps). Its sound starts afresh there.
        if (b.primary && (-ahead * 1000) / OPUS_RATE > AUDIO_CONCEAL_MAX_MS) this.nextTs = b.timestamp;
        else if (ahead < -samples / 2) continue; // handed on already
        if (ahead > samples / 2) this.conceal(b, ahead, afterSilence && b.primary, audioSr, videoSr, out);
      }
      this.nextTs = (b.timestamp + samples) % TS_MOD;
      fresh = true;
      if (!b.primary) this.counters.recovered++;
      const a = this.place(b.data, b.timestamp, false, audioSr, videoSr);
      if (a) {
        this.counters.packets++;
        out.push(a);
      }
    }
    // Late: nothing new in it (not: new but unplaced for want of an SR, counted as unsynced).
    if (!fresh) this.counters.late++;
    if (audioSr && out.some((a) => !a.concealed)) {
      const last = blocks.at(-1)!;
      this.latencyMs = nowMs - (ntpToMs(audioSr.ntpSec, audioSr.ntpFrac) + (tsDiff(audioSr.rtpTimestamp, last.timestamp) * 1000) / OPUS_RATE);
    }
    return out;
  }

  /** RFC 3550 A.8: the jitter estimate, from packets in sequence only. */
  private arrival(timestamp: number, nowMs: number): void {
    const transit = (nowMs * OPUS_RATE) / 1000 - timestamp;
    if (this.lastTransit !== undefined) {
      let d = Math.abs(transit - this.lastTransit);
      if (d > TS_MOD / 2) d = Math.abs(d - TS_MOD);
      this.jitter += (d - this.jitter) / 16;
    }
    this.lastTransit = transit;
  }

  /** Marks `ahead` ticks of missing sound (or of silence not sent) before `next`, in frames of `next`'s configuration. */
  private conceal(next: RedBlock, ahead: number, silence: boolean, audioSr: SenderClock | undefined, videoSr: SenderClock | undefined, out: ReceivedAudio[]): void {
    if ((ahead * 1000) / OPUS_RATE > (silence ? AUDIO_SILENCE_FILL_MS : AUDIO_CONCEAL_MAX_MS)) {
      this.counters.gaps++;
      return;
    }
    // Code 0 (one frame), the frame's bytes left out: the TOC byte alone (RFC 6716 §3.1-3.2.2).
    const mark = Buffer.from([next.data[0] & ~0x03]);
    const frame = opusPacketSamples(mark);
    const count = Math.max(1, Math.round(ahead / frame));
    for (let i = 0; i < count; i++) {
      if (silence) this.counters.silence++;
      else this.counters.concealed++;
      const a = this.place(mark, (this.nextTs! + i * frame) % TS_MOD, true, audioSr, videoSr);
      if (a) out.push(a);
    }
  }

  /** An Opus packet at `timestamp`, placed on the picture's clock; undefined (counted) without both SRs. */
  private place(data: Buffer, timestamp: number, concealed: boolean, audioSr: SenderClock | undefined, videoSr: SenderClock | undefined): ReceivedAudio | undefined {
    if (!audioSr || !videoSr) {
      this.counters.unsynced++;
      return undefined;
    }
    // The capture instant on the sharer's wall clock, then the picture's timestamp at it.
    const atMs = ntpToMs(audioSr.ntpSec, audioSr.ntpFrac) + (tsDiff(audioSr.rtpTimestamp, timestamp) * 1000) / OPUS_RATE;
    const fromVideoSr = ((atMs - ntpToMs(videoSr.ntpSec, videoSr.ntpFrac)) * VIDEO_CLOCK_RATE) / 1000;
    const videoTimestamp = (((videoSr.rtpTimestamp + Math.round(fromVideoSr)) % TS_MOD) + TS_MOD) % TS_MOD;
    return { data, ssrc: this.ssrc!, timestamp, videoTimestamp, concealed };
  }
}

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
 *
 * Silence the sharer did not send (DTX, codecs/opus/dtx.ts) is filled as it goes: once the last
 * packet was digital silence and the next is AUDIO_FILL_LAG_MS overdue, a copy of that packet is
 * handed on for each packet's time that passes, up to AUDIO_SILENCE_FILL_MS after it. A player
 * fed sound as it plays (ffplay's sound device waits for it, and loses the time it waited) and a
 * recording both get real silence, at its time. Should sound then come for a time already filled
 * (its packet later than the fill's lag), it is handed on right after the fill instead, and the
 * sound after it as much later (at most AUDIO_SHIFT_MAX_MS; sound later than that is dropped, as
 * it would be late for a live player), until the next silence takes that delay back (a fill step
 * not handed on); silence for a time already filled is dropped, and keeps the fill going. A poll
 * held up (watch's event loop ran late) fills nothing: what arrived meanwhile is read first. A hole the
 * fill did not cover is filled when the packet after it comes: as silence not sent when the marker
 * bit says so (RFC 7587 §4.1) or digital silence came before it, but for the packets lost at its
 * end when sound comes after it (a keepalive lost between silences is silence too). Silence is
 * filled with that silence (marks where it was not digital silence), sound lost with marks.
 */
import { OPUS_RATE, opusPacketSamples } from '../codecs/opus/opus.ts';
import { parseRed, type RedBlock } from '../codecs/opus/red.ts';
import { isOpusSilence } from '../codecs/opus/dtx.ts';
import { AUDIO_CONCEAL_MAX_MS, AUDIO_FILL_LAG_MS, AUDIO_SHIFT_MAX_MS, AUDIO_SILENCE_FILL_MS, PT_OPUS, PT_RED, VIDEO_CLOCK_RATE } from '../defaults.ts';
import type { RtpPacket } from '../rtp/packet.ts';
import { seqDiff, tsDiff, TS_MOD } from '../rtp/seq.ts';
import { ntpToMs } from '../transport/ntp.ts';
import { unlessMalformed } from '../util/errors.ts';

/** A sender's clock mapping from its latest SR. */
/** A poll this long after the one before it was held up (watch polls every 5 ms): it fills nothing. */
const POLL_LATE_MS = 20;

export interface SenderClock {
  ntpSec: number;
  ntpFrac: number;
  rtpTimestamp: number;
}

export interface ReceivedAudio {
  /** One Opus packet (a concealment mark: its TOC byte alone; a fill: the silence repeated). */
  data: Buffer;
  ssrc: number;
  /** Its RTP timestamp (48 kHz), later by the shift when sound came into a fill (see the top). */
  timestamp: number;
  /** The picture's RTP timestamp (90 kHz) of the instant its first sample was captured. */
  videoTimestamp: number;
  /**
   * Filled in after its time, when the packet after a hole came: a mark for the decoder to conceal
   * sound that never came, or silence not sent. A live player, whose time went on, skips it.
   */
  concealed: boolean;
}

export interface AudioCounters {
  /** Opus packets handed on (received or recovered; not the concealment marks). */
  packets: number;
  /** Sequence numbers never seen: sound packets the network lost, before any repair. */
  lost: number;
  /**
   * Packets that brought nothing new: duplicates, stragglers, copies of sound already handed on,
   * sound for a time filled with silence more than AUDIO_SHIFT_MAX_MS before it came.
   */
  late: number;
  /** Opus packets taken from a later packet's RED copy: sound the network lost and RED gave back. */
  recovered: number;
  /** Opus packets missing for good, each marked for the decoder to conceal (a packet's length each). */
  concealed: number;
  /** Holes not marked: longer than AUDIO_CONCEAL_MAX_MS (AUDIO_SILENCE_FILL_MS for silence). */
  gaps: number;
  /** Opus packets of silence the sharer did not send (DTX), filled in (player/audio.ts, above). */
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
  /** The last packet handed on, when it was digital silence: what a fill repeats. */
  private silenceBytes?: Buffer;
  /** When the last packet that brought sound arrived (the wall clock, ms). */
  private lastArrivalMs?: number;
  /** Packets' times filled with silence since then, and the timestamp the fill began at. */
  private filled = 0;
  private fillFrom?: number;
  /** 48 kHz ticks every packet is handed on later than its timestamp: sound that came into a fill. */
  private shift = 0;
  /** When poll was last called. */
  private lastPollMs?: number;

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
      this.silenceBytes = undefined;
      this.lastArrivalMs = undefined;
      this.filled = 0;
      this.fillFrom = undefined;
      this.shift = 0;
    }
    let afterSilence = false;
    let newer = true;
    /** Packets the network lost just before this one (RED's copies in it may give some back). */
    let missing = 0;
    if (this.lastSeq === undefined) this.lastSeq = pkt.sequenceNumber;
    else {
      const d = seqDiff(this.lastSeq, pkt.sequenceNumber);
      afterSilence = d === 1 && pkt.marker;
      missing = Math.max(0, d - 1);
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
    let keptAlive = false;
    // The packets lost for good: those missing, but for the copies of what came after the last
    // packet that arrived (a fill since then may have taken their time).
    const after = this.fillFrom ?? this.nextTs;
    const copies = after === undefined ? 0 : blocks.filter((b) => !b.primary && b.payloadType === PT_OPUS && tsDiff(after, b.timestamp) >= 0).length;
    const unrecovered = Math.max(0, missing - copies);
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
        let ahead = tsDiff(this.nextTs, b.timestamp);
        if (this.fillFrom !== undefined && ahead < 0 && tsDiff(this.fillFrom, b.timestamp) >= -samples / 2) {
          // Silence for a time filled with silence already: nothing to hand on, but the sharer is there.
          if (isOpusSilence(b.data)) {
            if (b.primary) {
              this.lastArrivalMs = nowMs;
              this.filled = 0;
              keptAlive = true;
            }
            continue;
          }
          // Sound for a time a fill took already: handed on after the fill, and all after it as
          // late, by at most AUDIO_SHIFT_MAX_MS. Later than that, the fill ends here and the sound
          // is dropped (a live player would find it late too) until it fits within that.
          if (this.shift - ahead > (AUDIO_SHIFT_MAX_MS * OPUS_RATE) / 1000) {
            this.silenceBytes = undefined;
            continue;
          }
          this.shift -= ahead;
          this.nextTs = b.timestamp;
          ahead = 0;
        }
        // A newer packet whose time went back further than a hole could be: the sharer's clock
        // stepped back (its capture times make the timestamps). Its sound starts afresh there.
        if (b.primary && (-ahead * 1000) / OPUS_RATE > AUDIO_CONCEAL_MAX_MS) {
          this.nextTs = b.timestamp;
          this.shift = 0;
        } else if (ahead < -samples / 2) continue; // handed on already
        // A hole is silence not sent when the marker says so, or when digital silence came before it:
        // all of it when silence comes after it too (a keepalive lost), else but for the packets
        // lost at its end. Otherwise it is sound lost.
        const silent = (afterSilence && b.primary) || this.silenceBytes !== undefined;
        if (ahead > samples / 2) this.conceal(b, ahead, silent, isOpusSilence(b.data) ? 0 : unrecovered, audioSr, videoSr, out);
      }
      this.nextTs = (b.timestamp + samples) % TS_MOD;
      fresh = true;
      this.silenceBytes = isOpusSilence(b.data) ? b.data : undefined;
      this.filled = 0;
      this.fillFrom = undefined;
      if (!b.primary) this.counters.recovered++;
      const a = this.place(b.data, b.timestamp, false, audioSr, videoSr);
      if (a) {
        this.counters.packets++;
        out.push(a);
      }
    }
    // Late: nothing new in it (not: new but unplaced for want of an SR, counted as unsynced).
    if (fresh) this.lastArrivalMs = nowMs;
    else if (!keptAlive) this.counters.late++;
    if (audioSr && out.some((a) => !a.concealed)) {
      const last = blocks.at(-1)!;
      this.latencyMs = nowMs - (ntpToMs(audioSr.ntpSec, audioSr.ntpFrac) + (tsDiff(audioSr.rtpTimestamp, last.timestamp) * 1000) / OPUS_RATE);
    }
    return out;
  }

  /** RTCP BYE for `ssrcs`: the sound's source left, so the silence after its last packet is not filled. */
  bye(ssrcs: readonly number[]): void {
    if (this.ssrc !== undefined && ssrcs.includes(this.ssrc)) this.silenceBytes = undefined;
  }

  /** The sound's source now (undefined before its first packet). */
  get source(): number | undefined {
    return this.ssrc;
  }

  /**
   * Timer entry (every few ms): after digital silence, a copy of it for each packet's time that
   * passed with nothing (DTX), once AUDIO_FILL_LAG_MS late, for at most AUDIO_SILENCE_FILL_MS.
   */
  poll(audioSr: SenderClock | undefined, videoSr: SenderClock | undefined, nowMs = Date.now()): ReceivedAudio[] {
    const out: ReceivedAudio[] = [];
    // Called late (watch's event loop was held up): packets may be waiting unread in the socket,
    // and a fill now would take their time. The next call, after they are read, fills if need be.
    const late = this.lastPollMs !== undefined && nowMs - this.lastPollMs > POLL_LATE_MS;
    this.lastPollMs = nowMs;
    if (late) return out;
    const silence = this.silenceBytes;
    if (!silence || this.nextTs === undefined || this.lastArrivalMs === undefined) return out;
    const frame = opusPacketSamples(silence);
    const frameMs = (frame * 1000) / OPUS_RATE;
    while ((this.filled + 1) * frameMs <= AUDIO_SILENCE_FILL_MS && nowMs >= this.lastArrivalMs + (this.filled + 1) * frameMs + AUDIO_FILL_LAG_MS) {
      this.filled++;
      this.fillFrom ??= this.nextTs;
      if (this.shift >= frame) {
        // Sound was handed on late once: this step of the silence takes a packet's time of it back.
        this.shift -= frame;
      } else {
        this.counters.silence++;
        const a = this.place(silence, this.nextTs, false, audioSr, videoSr);
        if (a) out.push(a);
      }
      this.nextTs = (this.nextTs + frame) % TS_MOD;
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

  /**
   * Fills the `ahead` ticks missing before `next`. A hole of silence not sent (`silence`) gets
   * the silence that came before it (marks where that was not digital silence), but for its last
   * `lost` packets: sound sent after the silence that the network lost and no copy gave back.
   * Those, and a hole of lost sound, get marks for the decoder to conceal: code 0 (one frame), the
   * frame's bytes left out, the TOC byte alone (RFC 6716 §3.1-3.2.2).
   */
  private conceal(next: RedBlock, ahead: number, silence: boolean, lost: number, audioSr: SenderClock | undefined, videoSr: SenderClock | undefined, out: ReceivedAudio[]): void {
    if ((ahead * 1000) / OPUS_RATE > (silence ? AUDIO_SILENCE_FILL_MS : AUDIO_CONCEAL_MAX_MS)) {
      this.counters.gaps++;
      return;
    }
    const mark = Buffer.from([next.data[0] & ~0x03]);
    const markFrame = opusPacketSamples(mark);
    const lostTicks = silence ? Math.min(ahead, lost * opusPacketSamples(next.data)) : ahead;
    const hush = this.silenceBytes ?? mark;
    const hushFrame = opusPacketSamples(hush);
    // (Not silence: lostTicks is the whole hole, so no silence.)
    const hushCount = lostTicks === 0 ? Math.max(1, Math.round(ahead / hushFrame)) : Math.round((ahead - lostTicks) / hushFrame);
    const markCount = lostTicks === 0 ? 0 : Math.max(1, Math.round((ahead - hushCount * hushFrame) / markFrame));
    let at = this.nextTs!;
    for (let i = 0; i < hushCount + markCount; i++) {
      const silent = i < hushCount;
      if (silent) this.counters.silence++;
      else this.counters.concealed++;
      const a = this.place(silent ? hush : mark, at, true, audioSr, videoSr);
      if (a) out.push(a);
      at = (at + (silent ? hushFrame : markFrame)) % TS_MOD;
    }
  }

  /** An Opus packet at `timestamp`, placed on the picture's clock; undefined (counted) without both SRs. */
  private place(data: Buffer, timestamp: number, concealed: boolean, audioSr: SenderClock | undefined, videoSr: SenderClock | undefined): ReceivedAudio | undefined {
    if (!audioSr || !videoSr) {
      this.counters.unsynced++;
      return undefined;
    }
    // The capture instant on the sharer's wall clock, then the picture's timestamp at it.
    const atMs = ntpToMs(audioSr.ntpSec, audioSr.ntpFrac) + ((tsDiff(audioSr.rtpTimestamp, timestamp) + this.shift) * 1000) / OPUS_RATE;
    const fromVideoSr = ((atMs - ntpToMs(videoSr.ntpSec, videoSr.ntpFrac)) * VIDEO_CLOCK_RATE) / 1000;
    const videoTimestamp = (((videoSr.rtpTimestamp + Math.round(fromVideoSr)) % TS_MOD) + TS_MOD) % TS_MOD;
    return { data, ssrc: this.ssrc!, timestamp: (timestamp + this.shift) % TS_MOD, videoTimestamp, concealed };
  }
}

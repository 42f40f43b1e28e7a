/**
 * The sharer's sound on the viewer's side (issue 15): Opus packets (RFC 7587, one per RTP packet)
 * taken in the order of their sequence numbers, duplicates and stragglers dropped (a 20 ms packet
 * late enough to arrive after a newer one is late for playing too), each placed on the picture's
 * RTP clock through the two sources' SRs: one NTP instant, each source's timestamp at it (RFC 3550
 * §6.4.1), so a recording lines sound and picture up as the sharer captured them.
 */
import { OPUS_RATE } from '../codecs/opus/opus.ts';
import { VIDEO_CLOCK_RATE } from '../defaults.ts';
import type { RtpPacket } from '../rtp/packet.ts';
import { seqDiff, tsDiff, TS_MOD } from '../rtp/seq.ts';
import { ntpToMs } from '../transport/ntp.ts';

/** A sender's clock mapping from its latest SR. */
export interface SenderClock {
  ntpSec: number;
  ntpFrac: number;
  rtpTimestamp: number;
}

export interface ReceivedAudio {
  /** One Opus packet. */
  data: Buffer;
  ssrc: number;
  /** Its RTP timestamp (48 kHz). */
  timestamp: number;
  /** The picture's RTP timestamp (90 kHz) of the instant its first sample was captured. */
  videoTimestamp: number;
}

export interface AudioCounters {
  /** Opus packets handed on. */
  packets: number;
  /** Sequence numbers never seen (the gaps between those handed on). */
  lost: number;
  /** Duplicates, and packets older than one already handed on. */
  late: number;
  /** Packets dropped because no SR has yet mapped the sound's clock or the picture's. */
  unsynced: number;
}

export class AudioReceiver {
  readonly counters: AudioCounters = { packets: 0, lost: 0, late: 0, unsynced: 0 };
  private ssrc?: number;
  private lastSeq?: number;

  /**
   * One Opus RTP packet, with the latest SRs of its source and of the picture being followed;
   * the packet on the picture's clock, or undefined when it is dropped (counted).
   */
  push(pkt: RtpPacket, audioSr: SenderClock | undefined, videoSr: SenderClock | undefined): ReceivedAudio | undefined {
    if (pkt.ssrc !== this.ssrc) {
      // A new sound source (the sharer restarted): its numbers start anywhere.
      this.ssrc = pkt.ssrc;
      this.lastSeq = undefined;
    }
    if (this.lastSeq !== undefined) {
      const d = seqDiff(this.lastSeq, pkt.sequenceNumber);
      if (d <= 0) {
        this.counters.late++;
        return undefined;
      }
      this.counters.lost += d - 1;
    }
    this.lastSeq = pkt.sequenceNumber;
    if (!audioSr || !videoSr) {
      this.counters.unsynced++;
      return undefined;
    }
    // The capture instant on the sharer's wall clock, then the picture's timestamp at it.
    const atMs = ntpToMs(audioSr.ntpSec, audioSr.ntpFrac) + (tsDiff(audioSr.rtpTimestamp, pkt.timestamp) * 1000) / OPUS_RATE;
    const fromVideoSr = ((atMs - ntpToMs(videoSr.ntpSec, videoSr.ntpFrac)) * VIDEO_CLOCK_RATE) / 1000;
    const videoTimestamp = (((videoSr.rtpTimestamp + Math.round(fromVideoSr)) % TS_MOD) + TS_MOD) % TS_MOD;
    this.counters.packets++;
    return { data: pkt.payload, ssrc: pkt.ssrc, timestamp: pkt.timestamp, videoTimestamp };
  }
}

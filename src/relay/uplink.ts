/**
 * Uplink repair, the relay's half: what went missing between the sharer and the relay is asked
 * for again (RFC 4585 §6.2.1 generic NACK, to the sharer), since every viewer lost it there and
 * the relay's history cannot hold what never reached it. A pure object driven by (SSRC, sequence
 * number, now): packets in the sharer's numbering, per source (each layer, the sound).
 *
 * A gap is asked for as soon as a later packet shows it, then again while later packets come (a
 * source that stops sends nothing more to ask about), at most UPLINK_NACK_TRIES times and for at
 * most UPLINK_REPAIR_MAX_MS. Again once the answer is overdue, timed as RFC 6298 times TCP's
 * retransmissions: the smoothed answer time plus four times its variation, from packets asked for
 * once (Karn's rule: an answer to one of several asks tells nothing of which it answers), and
 * doubled each time an ask goes unanswered until an answer is measured again (§5.5), so a slow
 * sharer, or a first sample that was only a reordered packet, does not have each loss asked for
 * over and over; UPLINK_NACK_RETRY_MS until the first answer. What arrives is told apart:
 * new, a packet asked for (repaired), one missing that came by itself before it was asked for
 * (reordered), or an old one not missing: already here (a copy), or given up, or from before the
 * gaps tracked.
 */
import { MAX_DROPOUT, UPLINK_MISSING_MAX, UPLINK_NACK_RETRY_MIN_MS, UPLINK_NACK_RETRY_MS, UPLINK_NACK_TRIES, UPLINK_REPAIR_MAX_MS } from '../defaults.ts';
import { seqAdd, seqDiff } from '../rtp/seq.ts';

export type UplinkArrival = 'new' | 'repaired' | 'reordered' | 'old';

interface Missing {
  since: number;
  lastNack: number;
  tries: number;
}

interface Source {
  highest: number;
  missing: Map<number, Missing>;
  /** After a jump past MAX_DROPOUT: the number that, coming next, confirms the sender started over. */
  restartAt?: number;
}

/** Sources tracked at once: a stream's layers and its sound, with room for a sharer that restarts. */
const SOURCES_MAX = 8;
/** The most the retry interval is doubled (retryMs is capped at UPLINK_REPAIR_MAX_MS too). */
const BACKOFF_MAX = 16;

export class UplinkGaps {
  /** Sequence numbers asked for, counting each try. */
  nacked = 0;
  /** Packets asked for that came. */
  repaired = 0;
  /** Sequence numbers given up: not come after UPLINK_NACK_TRIES or UPLINK_REPAIR_MAX_MS, or too many at once. */
  givenUp = 0;
  /** How long the sharer takes to answer a NACK (ms, RFC 6298's SRTT), and its variation (RTTVAR), once measured. */
  answerMs?: number;
  private answerVarMs = 0;
  /** RFC 6298 §5.5's backoff: doubled by each retry, back to 1 with the next answer measured. */
  private backoff = 1;
  private readonly sources = new Map<number, Source>();

  /** How long an ask waits for its answer before the next (RFC 6298's RTO, at least UPLINK_NACK_RETRY_MIN_MS, at most UPLINK_REPAIR_MAX_MS). */
  get retryMs(): number {
    const rto = this.answerMs === undefined ? UPLINK_NACK_RETRY_MS : Math.max(UPLINK_NACK_RETRY_MIN_MS, this.answerMs + 4 * this.answerVarMs);
    return Math.min(UPLINK_REPAIR_MAX_MS, rto * this.backoff);
  }

  /** A packet of source `ssrc` numbered `seq` arrived at `now`. */
  arrived(ssrc: number, seq: number, now: number): UplinkArrival {
    let src = this.sources.get(ssrc);
    if (!src) {
      if (this.sources.size >= SOURCES_MAX) this.sources.delete(this.sources.keys().next().value!);
      this.sources.set(ssrc, { highest: seq, missing: new Map() });
      return 'new';
    }
    const d = seqDiff(src.highest, seq);
    if (d > MAX_DROPOUT || d < -MAX_DROPOUT) {
      // A jump that large is the sender starting over, once the next packet follows it (RFC 3550
      // A.1's probation); one stray packet is old, and changes nothing.
      if (seq !== src.restartAt) {
        src.restartAt = seqAdd(seq, 1);
        return 'old';
      }
      this.givenUp += src.missing.size;
      src.missing.clear();
      src.highest = seq;
      src.restartAt = undefined;
      return 'new';
    }
    if (d > 0) {
      for (let i = 1; i < d; i++) {
        if (src.missing.size >= UPLINK_MISSING_MAX) {
          this.givenUp += d - i;
          break;
        }
        src.missing.set(seqAdd(src.highest, i), { since: now, lastNack: -Infinity, tries: 0 });
      }
      src.highest = seq;
      return 'new';
    }
    const m = src.missing.get(seq);
    if (!m) return 'old';
    src.missing.delete(seq);
    if (m.tries === 0) return 'reordered';
    this.repaired++;
    if (m.tries === 1) this.answered(now - m.lastNack);
    return 'repaired';
  }

  /** The sequence numbers of `ssrc` to ask for now (new gaps, and retries due), if any. Gives up the expired. */
  due(ssrc: number, now: number): number[] | undefined {
    const src = this.sources.get(ssrc);
    if (!src || src.missing.size === 0) return undefined;
    let out: number[] | undefined;
    let retried = false;
    const retryMs = this.retryMs;
    for (const [seq, m] of src.missing) {
      // The last try is given its retry interval to be answered.
      const expired = m.tries >= UPLINK_NACK_TRIES ? now - m.lastNack >= retryMs : now - m.since >= UPLINK_REPAIR_MAX_MS;
      if (expired) {
        src.missing.delete(seq);
        this.givenUp++;
      } else if (m.tries < UPLINK_NACK_TRIES && now - m.lastNack >= retryMs) {
        if (m.tries > 0) retried = true;
        m.tries++;
        m.lastNack = now;
        (out ??= []).push(seq);
      }
    }
    if (retried) this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    if (out) this.nacked += out.length;
    return out;
  }

  /** One answer time (RFC 6298 §2: the first sets SRTT and RTTVAR, later ones move them by 1/8 and 1/4). */
  private answered(ms: number): void {
    this.backoff = 1;
    if (this.answerMs === undefined) {
      this.answerMs = ms;
      this.answerVarMs = ms / 2;
      return;
    }
    this.answerVarMs += (Math.abs(this.answerMs - ms) - this.answerVarMs) / 4;
    this.answerMs += (ms - this.answerMs) / 8;
  }
}

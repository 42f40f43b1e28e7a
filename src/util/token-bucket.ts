/**
 * The token bucket, written once: every rate limit of the relay (keepalives, retransmissions,
 * replies to unproven addresses, catch-up pacing) is one of these with its own units.
 *
 * Units: `rate` is tokens per second, `burst` the most tokens the bucket holds, `now` milliseconds
 * from any clock (it is passed in, so tests drive it without sleeping). What a token is belongs to
 * the caller: a message, a packet, a byte.
 *
 * Time going backwards (a clock step, callers with slightly different `now`s) adds no tokens and
 * does not move the bucket's clock back: otherwise the same interval would be paid out twice when
 * time caught up again.
 */

/** Tokens after refilling from `at` to `now`; the arithmetic both classes below share. */
function refilled(tokens: number, at: number, now: number, rate: number, burst: number): number {
  return now > at ? Math.min(burst, tokens + ((now - at) * rate) / 1000) : tokens;
}

export class TokenBucket {
  /** Below 0 after spend() overdrew it: a debt the refill pays back first. */
  tokens: number;
  private at: number;

  constructor(
    /** Tokens per second. */
    readonly rate: number,
    /** Most tokens held: the largest burst after a quiet spell. */
    readonly burst: number,
    now: number,
    /** Tokens at the start (default: full). */
    tokens = burst,
  ) {
    this.tokens = tokens;
    this.at = now;
  }

  /** Adds what `now` earned; returns the tokens there are. */
  refill(now: number): number {
    this.tokens = refilled(this.tokens, this.at, now, this.rate, this.burst);
    if (now > this.at) this.at = now;
    return this.tokens;
  }

  /** Takes `n` tokens if there are that many; false (and nothing taken) otherwise. */
  take(now: number, n = 1): boolean {
    if (this.refill(now) < n) return false;
    this.tokens -= n;
    return true;
  }

  /**
   * Takes `n` even if that overdraws the bucket. For pacing variable-size items: send while
   * tokens > 0, and the overshoot delays the next one (a datagram is never split).
   */
  spend(n: number): void {
    this.tokens -= n;
  }
}

/**
 * A fixed table of buckets by index, in two typed arrays: for keys that have no state of their
 * own (hashed addresses), so a flood of keys costs no memory beyond `size` buckets (16 bytes each).
 * Every bucket starts full.
 */
export class TokenBucketTable {
  private readonly tokens: Float64Array;
  private readonly at: Float64Array;

  constructor(
    readonly size: number,
    /** Tokens per second, per bucket. */
    readonly rate: number,
    /** Most tokens one bucket holds. */
    readonly burst: number,
  ) {
    this.tokens = new Float64Array(size).fill(burst);
    this.at = new Float64Array(size);
  }

  /** Takes `n` tokens from bucket `i` (0 ≤ i < size) if it has them. */
  take(i: number, now: number, n = 1): boolean {
    this.tokens[i] = refilled(this.tokens[i], this.at[i], now, this.rate, this.burst);
    if (now > this.at[i]) this.at[i] = now;
    if (this.tokens[i] < n) return false;
    this.tokens[i] -= n;
    return true;
  }
}

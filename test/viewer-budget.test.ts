/**
 * The viewer's latency budget (src/player/budget.ts): RTT and loss samples in, the jitter buffer's
 * timing out. The numbers are the ones its doc comment promises.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { LatencyBudget } from '../src/player/budget.ts';
import { LATENCY_BUDGET_INITIAL_MS, LATENCY_BUDGET_MAX_MS, LATENCY_BUDGET_MIN_MS, LATENCY_BUDGET_REPAIR_MAX_MS } from '../src/defaults.ts';

type Counts = { arrived: number; missed: number; repairWaits: number; repairWaitMs?: number };
const zero = (): Counts => ({ arrived: 0, missed: 0, repairWaits: 0 });

/**
 * Feeds one keepalive interval of `n` packets with `lossPct` % lost, each repaired `repairMs` after
 * it was found missing when given; returns the running counts.
 */
function interval(b: LatencyBudget, counts: Counts, n: number, lossPct: number, repairMs?: number) {
  const missed = Math.round((n * lossPct) / 100);
  counts.arrived += n - missed;
  counts.missed += missed;
  if (repairMs !== undefined) {
    counts.repairWaits += missed;
    counts.repairWaitMs = repairMs;
  }
  b.sampleLoss(counts);
  return counts;
}

describe('latency budget', () => {
  test('before any RTT: the initial budget; NACKs every 30 ms; every fill after a NACK counts as a repair', () => {
    const b = new LatencyBudget();
    assert.deepEqual([b.latencyMs, b.retryMs, b.answerMs, b.rttMs], [LATENCY_BUDGET_INITIAL_MS, 30, 0, undefined]);
  });

  test('at 20 ms RTT: 0-1 % loss → 69 ms, 5 % → 127 ms, 20 % → 185 ms; rises at once, falls slowly', () => {
    const b = new LatencyBudget();
    b.onRtt(20);
    assert.equal(b.retryMs, 29);
    assert.equal(b.answerMs, 10, 'half the shortest round trip');
    assert.equal(b.latencyMs, 69);
    const c = zero();
    interval(b, c, 1000, 5);
    assert.equal(b.latencyMs, 127);
    interval(b, c, 1000, 20);
    assert.equal(b.latencyMs, 185);
    interval(b, c, 1000, 0); // estimate 0.16: still 6 tries
    assert.equal(b.latencyMs, 185);
    interval(b, c, 1000, 0); // 0.128: 5 tries
    assert.equal(b.latencyMs, 156);
    interval(b, c, 10, 50); // too few packets to say anything
    assert.equal(b.latencyMs, 156);
  });

  test('bounds, the shortest RTT for answers, and a fixed --latency', () => {
    const b = new LatencyBudget();
    b.onRtt(600);
    assert.equal(b.latencyMs, LATENCY_BUDGET_MAX_MS);
    b.onRtt(1);
    assert.equal(b.latencyMs, LATENCY_BUDGET_MIN_MS);
    assert.equal(b.answerMs, 0, 'below 10 ms the clock cannot tell a re-sent packet from a late one');
    const c = new LatencyBudget();
    c.onRtt(30);
    c.onRtt(50);
    assert.equal(c.answerMs, 15, 'from the shortest round trip seen');
    const fixed = new LatencyBudget(250);
    fixed.onRtt(20);
    interval(fixed, zero(), 1000, 20);
    assert.equal(fixed.latencyMs, 250);
    assert.equal(fixed.retryMs, 29, 'NACK pacing still follows the RTT');
  });

  test('repairs slower than the round trip (the loss was on the sharer\'s way, repaired from there): rounds of their length', () => {
    const b = new LatencyBudget();
    b.onRtt(1); // a viewer next to its relay
    const c = interval(b, zero(), 1000, 5);
    assert.equal(b.latencyMs, 51, 'from the round trip alone: 1 + 3 × 10 + 20');
    interval(b, c, 1000, 5, 20);
    assert.equal(b.repairMs, 20);
    assert.equal(b.latencyMs, 127, '20 + 3 × 29 + 20');
    assert.equal(b.retryMs, 10, 'its own NACKs still follow its round trip');
    interval(b, c, 1000, 5, 30);
    assert.equal(b.latencyMs, LATENCY_BUDGET_REPAIR_MAX_MS, '30 + 3 × 41 + 20 = 173: a call\'s delay at most');
    interval(b, c, 1000, 5, 2); // the sharer's path heals: falls slowly
    assert.equal(b.repairMs, 24.4);
    interval(b, c, 1000, 0); // no repairs this second: toward the round trip
    assert.equal(b.repairMs, 0.8 * 24.4 + 0.2 * 1);
  });

  test('a new sharer session starts a fresh loss sample (not one over the whole session so far)', () => {
    const b = new LatencyBudget();
    b.onRtt(20);
    const c = interval(b, zero(), 1000, 0);
    // The old session's unsampled tail was lossy; then the sharer restarts.
    c.arrived += 1000;
    c.missed += 500;
    b.restartSample(c);
    interval(b, c, 100, 0);
    assert.equal(b.lossEstimate, 0);
    assert.equal(b.latencyMs, 69);
  });
});

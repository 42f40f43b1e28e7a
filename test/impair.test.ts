/**
 * `udpcast impair`: the pure impairment core driven by a fake clock and fixed seeds (statistical
 * bounds computed from the model, not guessed), then the proxy on real 127.0.0.1 sockets, then the
 * option parsers.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import {
  ClientTable,
  DEFAULT_REORDER_GAP_MS,
  ImpairCore,
  MinHeap,
  NO_IMPAIRMENT,
  Prng,
  describeSettings,
  impairSettings,
  maxBurstLoss,
  parseMs,
  parsePercent,
  parseQueue,
  parseRate,
  parseRateEvery,
  parseRates,
  type Decision,
  type ImpairSettings,
} from '../src/impair/core.ts';
import { ImpairProxy, type Direction } from '../src/impair/proxy.ts';
import { impairOptions } from '../src/apps/impair.ts';
import { UsageError } from '../src/util/errors.ts';

const settings = (s: Partial<ImpairSettings>): ImpairSettings => ({ ...NO_IMPAIRMENT, ...s });

/** Decisions for `n` datagrams of `size` bytes arriving every `gapMs` from t = 0. */
function run(core: ImpairCore, n: number, gapMs = 1, size = 1000): Decision[] {
  const out: Decision[] = [];
  for (let i = 0; i < n; i++) out.push(core.decide(size, i * gapMs));
  return out;
}

/** |observed - expected| ≤ 4 standard deviations of a Binomial(n, p) count. */
function assertBinomial(observed: number, n: number, p: number, what: string): void {
  const sd = Math.sqrt(n * p * (1 - p));
  const expected = n * p;
  assert.ok(Math.abs(observed - expected) <= 4 * sd, `${what}: ${observed} of ${n}, expected ${expected} ± ${(4 * sd).toFixed(1)} (4 sd)`);
}

/** Runs of consecutive drops, in order. */
function lossRuns(ds: Decision[]): number[] {
  const runs: number[] = [];
  let cur = 0;
  for (const d of ds) {
    if (d.kind === 'drop') cur++;
    else if (cur > 0) {
      runs.push(cur);
      cur = 0;
    }
  }
  if (cur > 0) runs.push(cur);
  return runs;
}

const N = 100_000;

describe('impair core: loss', () => {
  for (const p of [0.01, 0.05, 0.3]) {
    test(`random loss ${p * 100}%: the loss count over ${N} datagrams is within 4 sd of the setting`, () => {
      const core = new ImpairCore(settings({ loss: p }), 1234);
      const ds = run(core, N);
      const lost = ds.filter((d) => d.kind === 'drop').length;
      assertBinomial(lost, N, p, 'lost');
      assert.ok(ds.every((d) => d.kind === 'forward' || d.reason === 'loss'));
      assert.equal(core.counters.lost, lost);
      assert.equal(core.counters.lostBurst, 0);
      assert.equal(core.counters.forwarded, N - lost);
    });
  }

  test('loss 0 loses nothing, loss 100% loses everything', () => {
    assert.equal(run(new ImpairCore(settings({ loss: 0 }), 1), 10_000).filter((d) => d.kind === 'drop').length, 0);
    assert.equal(run(new ImpairCore(settings({ loss: 1 }), 1), 10_000).filter((d) => d.kind === 'forward').length, 0);
  });

  test('random losses are independent: the run lengths are geometric (P(run ≥ 2) ≈ p)', () => {
    const p = 0.2;
    const runs = lossRuns(run(new ImpairCore(settings({ loss: p }), 99), N));
    // Given a loss run has started, it continues with probability p at each step.
    assertBinomial(runs.filter((r) => r >= 2).length, runs.length, p, 'runs of 2 or more');
  });

  for (const len of [2, 4, 10]) {
    test(`burst ${len}: every loss run is exactly ${len} long and the long-run loss rate is the setting`, () => {
      const p = 0.1;
      const core = new ImpairCore(settings({ loss: p, burst: len }), 7);
      const ds = run(core, N);
      const runs = lossRuns(ds);
      const last = ds.at(-1)!.kind === 'drop' ? runs.pop()! : len; // a run cut off by the end of the test
      assert.ok(last <= len);
      assert.ok(runs.length > 100, `${runs.length} bursts`);
      assert.deepEqual(new Set(runs), new Set([len]), `run lengths ${[...new Set(runs)].join(', ')}`);
      // Renewal bound: a cycle is LEN lost + 1 forced delivery + Geometric(q) more deliveries.
      const q = p / (len * (1 - p));
      const meanCycle = len + 1 + (1 - q) / q;
      const varCycle = (1 - q) / (q * q);
      const sdLost = len * Math.sqrt((N * varCycle) / meanCycle ** 3);
      const lost = core.counters.lostBurst;
      assert.ok(Math.abs(lost - N * p) <= 4 * sdLost, `lost ${lost}, expected ${N * p} ± ${(4 * sdLost).toFixed(0)}`);
      assert.equal(core.counters.lost, 0, 'in burst mode every loss is a burst loss');
      assert.ok(ds.every((d) => d.kind === 'forward' || d.reason === 'burst'));
    });
  }

  test('burst loss is capped at LEN/(LEN+1): at the cap, LEN lost and 1 delivered, forever', () => {
    const core = new ImpairCore(settings({ loss: maxBurstLoss(3), burst: 3 }), 5);
    const pattern = run(core, 40).map((d) => (d.kind === 'drop' ? 'x' : '.')).join('');
    assert.equal(pattern, 'xxx.'.repeat(10));
    usage(() => new ImpairCore(settings({ loss: 0.8, burst: 3 }), 5), /^--loss with --burst 3 must be at most 75% .*got 80%$/);
  });
});

describe('impair core: delay, jitter, reorder, duplicate', () => {
  test('fixed delay: every datagram leaves exactly delayMs after it arrived', () => {
    const core = new ImpairCore(settings({ delayMs: 37 }), 1);
    for (let t = 0; t < 1000; t += 3) assert.deepEqual(core.decide(100, t), { kind: 'forward', sendAt: t + 37, copies: 1, reordered: false });
  });

  test('jitter without reorder keeps order, and each delay is within [delay, delay + jitter]', () => {
    const delay = 10;
    const jitter = 20;
    const core = new ImpairCore(settings({ delayMs: delay, jitterMs: jitter }), 3);
    let prev = -Infinity;
    let clamped = 0;
    for (let i = 0; i < 20_000; i++) {
      const now = i * 0.5; // far closer together than the jitter: unclamped, most would reorder
      const d = core.decide(500, now);
      assert.equal(d.kind, 'forward');
      if (d.kind !== 'forward') return;
      assert.ok(d.sendAt >= prev, `datagram ${i} at ${d.sendAt} overtakes one at ${prev}`);
      assert.ok(d.sendAt >= now + delay && d.sendAt <= now + delay + jitter, `datagram ${i}: delay ${d.sendAt - now}`);
      if (d.sendAt === prev) clamped++;
      prev = d.sendAt;
      assert.equal(d.reordered, false);
    }
    assert.ok(clamped > 0, 'the clamp did some work');
  });

  test('jitter on sparse traffic is uniform over [delay, delay + jitter)', () => {
    const core = new ImpairCore(settings({ delayMs: 10, jitterMs: 20 }), 4);
    const delays = run(core, 10_000, 100).map((d, i) => (d.kind === 'forward' ? d.sendAt - i * 100 - 10 : NaN));
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    // Uniform(0, 20): mean 10, sd 20/√12; the mean of 10 000 has sd 0.058.
    assert.ok(Math.abs(mean - 10) < 4 * (20 / Math.sqrt(12) / 100), `mean extra delay ${mean}`);
    assert.ok(Math.min(...delays) < 0.1 && Math.max(...delays) > 19.9, 'covers the range');
    assert.ok(delays.every((x) => x >= 0 && x < 20));
  });

  test('reorder: the chosen datagrams are overtaken by the ones after them, at the set rate', () => {
    const p = 0.05;
    const core = new ImpairCore(settings({ delayMs: 5, reorder: p }), 11);
    const ds = run(core, N, 1);
    const forwards = ds.map((d) => (d.kind === 'forward' ? d : undefined)!);
    const reordered = forwards.filter((d) => d.reordered).length;
    assertBinomial(reordered, N, p, 'reordered');
    assert.equal(core.counters.reordered, reordered);
    // Walking backwards, `next` is the first datagram after i that was not itself held back.
    let next: (typeof forwards)[number] | undefined;
    for (let i = forwards.length - 1; i >= 0; i--) {
      const d = forwards[i];
      if (!d.reordered) {
        next = d;
        continue;
      }
      assert.equal(d.sendAt, i + 5 + DEFAULT_REORDER_GAP_MS, 'held back by the gap');
      if (next) assert.ok(next.sendAt < d.sendAt, `datagram ${i} is overtaken`);
    }
    // The others keep their order among themselves.
    const inOrder = forwards.filter((d) => !d.reordered).map((d) => d.sendAt);
    assert.ok(inOrder.every((t, i) => i === 0 || t >= inOrder[i - 1]));
  });

  test('duplicate: the rate of second copies is within 4 sd of the setting', () => {
    const p = 0.02;
    const core = new ImpairCore(settings({ duplicate: p }), 21);
    const ds = run(core, N);
    const copies = ds.map((d) => (d.kind === 'forward' ? d.copies : 0));
    assert.ok(copies.every((c) => c === 1 || c === 2));
    const dups = copies.filter((c) => c === 2).length;
    assertBinomial(dups, N, p, 'duplicated');
    assert.equal(core.counters.duplicated, dups);
    assert.equal(core.counters.bytes, (N + dups) * 1000, 'bytes count every copy');
  });
});

describe('impair core: rate limit (token bucket and a bounded queue)', () => {
  // 1 Mbit/s and 1250-byte datagrams: the link carries exactly 100 datagrams a second, one per 10 ms.
  const rateBps = 1_000_000;
  const size = 1250;
  const bits = size * 8;
  const queue = 20;

  test('sending 2× the rate for 1 s forwards the rate plus the bucket, queues at most the cap and drops the rest', () => {
    const core = new ImpairCore(settings({ rateBps, queuePackets: queue }), 1);
    const bucketBits = 8 * Math.max(1500, (rateBps / 8) * 0.01); // the default: 10 ms of rate, ≥ 1500 bytes
    const sent = 200; // every 5 ms for 1 s
    const ds = run(core, sent, 5, size);
    const fwd = ds.filter((d) => d.kind === 'forward');
    const byOneSecond = fwd.filter((d) => d.sendAt <= 1000).length;
    const expected = (rateBps * 1) / bits + Math.floor(bucketBits / bits);
    assert.ok(Math.abs(byOneSecond - expected) <= 2, `${byOneSecond} datagrams left within 1 s, the link carries ${expected}`);
    // Overloaded to the end, the last arrival (t = 995 ms) finds the queue full: exactly the cap waits.
    const backlog = fwd.filter((d) => d.sendAt > 995).length;
    assert.equal(backlog, queue, `${backlog} waiting at the last arrival (cap ${queue})`);
    assert.equal(core.counters.rateDropped, sent - fwd.length);
    assert.ok(ds.every((d) => d.kind === 'forward' || d.reason === 'rate'));
    // Departures after the bucket's first burst are spaced by one serialization time.
    const times = fwd.map((d) => d.sendAt);
    for (let i = 2; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 10 - 1e-9, `gap ${times[i] - times[i - 1]} ms at ${i}`);
    // Queueing delay is bounded by the queue: at most (cap + 1) serialization times.
    ds.forEach((d, i) => d.kind === 'forward' && assert.ok(d.sendAt - i * 5 <= (queue + 1) * 10 + 1e-9));
  });

  test('below the rate nothing waits and nothing is dropped', () => {
    const core = new ImpairCore(settings({ rateBps, queuePackets: queue }), 1);
    const ds = run(core, 1000, 20, size); // half the rate
    assert.ok(ds.every((d, i) => d.kind === 'forward' && d.sendAt === i * 20));
  });

  test('queue 0 is a policer: what cannot leave at once is dropped, and the bucket is not charged for it', () => {
    const core = new ImpairCore(settings({ rateBps, queuePackets: 0, bucketBytes: size }), 1);
    const ds = run(core, 100, 1, size);
    // Tokens for one datagram at t=0, then the next one only after 10 ms of refill.
    const kept = ds.flatMap((d, i) => (d.kind === 'forward' ? [i] : []));
    assert.deepEqual(kept, Array.from({ length: 10 }, (_, k) => k * 10));
    assert.ok(ds.every((d, i) => d.kind === 'drop' || d.sendAt === i), 'kept ones leave at once');
  });

  test('the delay line holds at most maxInFlight datagrams', () => {
    const core = new ImpairCore(settings({ delayMs: 100, maxInFlight: 10 }), 1);
    const first = run(core, 20, 0);
    assert.equal(first.filter((d) => d.kind === 'forward').length, 10);
    assert.equal(core.counters.overflow, 10);
    assert.equal(core.decide(100, 100).kind, 'forward', 'room again once the first ones are due');
  });
});

describe('impair core: rate schedule and a queue as time', () => {
  // 1250-byte datagrams: 10 000 bits, 2.5 ms at 4 Mbit/s and 10 ms at 1 Mbit/s (exact in binary).
  const size = 1250;
  const departures = (ds: Decision[]) => ds.map((d) => (d.kind === 'forward' ? d.sendAt : NaN));

  test('rateAt: each step holds rateEveryMs from the start time, the list cycles, times before the start are step one', () => {
    const core = new ImpairCore(settings({ rateBps: [4e6, 1e6, 2e6], rateEveryMs: 100 }), 1, 1000);
    assert.deepEqual(core.rateAt(0), { rateBps: 4e6, untilMs: 1100 });
    assert.deepEqual(core.rateAt(1000), { rateBps: 4e6, untilMs: 1100 });
    assert.deepEqual(core.rateAt(1099.999), { rateBps: 4e6, untilMs: 1100 });
    assert.deepEqual(core.rateAt(1100), { rateBps: 1e6, untilMs: 1200 });
    assert.deepEqual(core.rateAt(1250), { rateBps: 2e6, untilMs: 1300 });
    assert.deepEqual(core.rateAt(1300), { rateBps: 4e6, untilMs: 1400 }, 'back to the first');
    assert.equal(core.rateAt(1000 + 3 * 100 * 1000 + 150)!.rateBps, 1e6, 'a thousand cycles on');
    assert.deepEqual(new ImpairCore(settings({ rateBps: 4e6 }), 1).rateAt(1e9), { rateBps: 4e6, untilMs: Infinity });
    assert.equal(new ImpairCore(NO_IMPAIRMENT, 1).rateAt(0), undefined);
  });

  test('4M,1M every 101 ms under overload: tokens accrue at the old rate up to each change, the new one after, and the list cycles', () => {
    // One datagram of bucket, a queue that never fills, one arrival a millisecond (overload at both
    // rates): departures are the link's own schedule.
    const core = new ImpairCore(settings({ rateBps: [4e6, 1e6], rateEveryMs: 101, bucketBytes: size, queuePackets: 100_000 }), 1);
    const d = departures(run(core, 400, 1, size));
    assert.equal(core.counters.rateDropped, 0);
    for (let k = 0; k <= 40; k++) assert.equal(d[k], 2.5 * k, `4M: datagram ${k}`);
    // 100 → 101 earns 4000 bits at 4M, the other 6000 take 6 ms at 1M.
    assert.equal(d[41], 107, 'straddles the 4M → 1M change at 101');
    for (let k = 42; k <= 50; k++) assert.equal(d[k] - d[k - 1], 10, `1M: gap before datagram ${k}`);
    assert.equal(d[50], 197);
    // 197 → 202 earns 5000 bits at 1M, the other 5000 take 1.25 ms at 4M again.
    assert.equal(d[51], 203.25, 'straddles the 1M → 4M change at 202');
    for (let k = 52; k <= 90; k++) assert.equal(d[k] - d[k - 1], 2.5, `4M again: gap before datagram ${k}`);
    assert.equal(d[91], 304, 'and 4M → 1M again at 303');
  });

  test('4M,1M every 15 s with a 100 ms queue, 2 Mbit/s offered for a minute: all of it at 4M, 1 Mbit/s at 1M, in each cycle', () => {
    const core = new ImpairCore(settings({ rateBps: [4e6, 1e6], rateEveryMs: 15_000, queueMs: 100 }), 1);
    const ds = run(core, 12_000, 5, size); // 10 000 bits every 5 ms: 2 Mbit/s
    const perWindow = [0, 0, 0, 0];
    const dropsPerWindow = [0, 0, 0, 0];
    ds.forEach((d, i) => {
      if (d.kind === 'forward') {
        perWindow[Math.floor(d.sendAt / 15_000)]++;
        assert.ok(d.sendAt - i * 5 <= 100 + 1e-9, `datagram ${i} waited ${d.sendAt - i * 5} ms, more than the queue`);
      } else dropsPerWindow[Math.floor((i * 5) / 15_000)]++;
    });
    assert.equal(perWindow[0], 3000, 'first 15 s at 4M: everything');
    assert.equal(dropsPerWindow[0], 0);
    // At 1M the link carries 1500 datagrams in 15 s, give or take the bucket and the queue (10 each).
    assert.ok(Math.abs(perWindow[1] - 1500) <= 12, `15-30 s at 1M: ${perWindow[1]} datagrams`);
    // 30-45 s at 4M again: all 3000 offered, plus the last 100 ms of the 1M step (20 datagrams at
    // 2 Mbit/s), which the queue kept because they leave within 100 ms at 4M (the schedule is known).
    assert.ok(perWindow[2] >= 3000 && perWindow[2] <= 3022, `30-45 s at 4M again: ${perWindow[2]} datagrams`);
    assert.ok(Math.abs(perWindow[3] - 1500) <= 12, `45-60 s at 1M again: ${perWindow[3]} datagrams`);
    assert.ok(dropsPerWindow[1] > 1400 && dropsPerWindow[3] > 1400, `drops ${dropsPerWindow.join(', ')}`);
    assert.equal(dropsPerWindow[2], 0);
  });

  test('a schedule of one repeated rate is that fixed rate', () => {
    const arrivals = (core: ImpairCore) => departures(run(core, 3000, 0.7, 900));
    const fixed = arrivals(new ImpairCore(settings({ rateBps: 3e6, queuePackets: 40 }), 9));
    const repeated = arrivals(new ImpairCore(settings({ rateBps: [3e6, 3e6], rateEveryMs: 100, queuePackets: 40 }), 9));
    assert.equal(repeated.length, fixed.length);
    fixed.forEach((t, i) => assert.ok(Number.isNaN(t) ? Number.isNaN(repeated[i]) : Math.abs(t - repeated[i]) < 1e-6, `datagram ${i}: ${t} vs ${repeated[i]}`));
  });

  test('queue 50ms drops a datagram that would wait more than 50 ms, at 1M after 6 datagrams and at 4M after 21', () => {
    /** Which of a burst of 30 at `at` are kept. */
    const burst = (core: ImpairCore, at: number) => Array.from({ length: 30 }, () => core.decide(size, at)).flatMap((d, k) => (d.kind === 'forward' ? [k] : []));
    const upTo = (n: number) => Array.from({ length: n + 1 }, (_, k) => k);
    // 1M: datagram k leaves at 10k ms; k = 5 leaves exactly 50 ms after arriving and is kept.
    assert.deepEqual(burst(new ImpairCore(settings({ rateBps: 1e6, bucketBytes: size, queueMs: 50 }), 1), 0), upTo(5));
    // 4M: at 2.5k ms, so up to k = 20.
    assert.deepEqual(burst(new ImpairCore(settings({ rateBps: 4e6, bucketBytes: size, queueMs: 50 }), 1), 0), upTo(20));
    // Both in one schedule: the same queue holds 50 ms at whatever the rate is at the time.
    const core = new ImpairCore(settings({ rateBps: [4e6, 1e6], rateEveryMs: 1000, bucketBytes: size, queueMs: 50 }), 1);
    assert.deepEqual(burst(core, 0), upTo(20), 'at 4M');
    assert.deepEqual(burst(core, 1000), upTo(5), 'at 1M');
    // Dropped datagrams were not charged to the bucket: the queue is empty at 1050, full bucket at 1060.
    assert.deepEqual(core.decide(size, 1060), { kind: 'forward', sendAt: 1060, copies: 1, reordered: false });
    assert.deepEqual(burst(core, 2000), upTo(20), 'at 4M again');
    assert.equal(core.counters.rateDropped, 9 + 24 + 9);
  });

  test('queue 0ms is a policer, as queue 0', () => {
    const a = run(new ImpairCore(settings({ rateBps: 1e6, queueMs: 0, bucketBytes: size }), 1), 100, 1, size);
    const b = run(new ImpairCore(settings({ rateBps: 1e6, queuePackets: 0, bucketBytes: size }), 1), 100, 1, size);
    assert.deepEqual(a, b);
  });

  test('settings built in code are checked too', () => {
    usage(() => new ImpairCore(settings({ rateBps: [4e6, 1e6] }), 1), /^--rate 4 Mbit\/s, 1 Mbit\/s is a schedule: add --rate-every/);
    usage(() => new ImpairCore(settings({ rateBps: 4e6, rateEveryMs: 1000 }), 1), /^--rate-every needs --rate to list two or more rates/);
    usage(() => new ImpairCore(settings({ rateBps: [4e6, 1e6], rateEveryMs: 10 }), 1), /^--rate-every must be 100ms-3600s, got 10 ms$/);
    usage(() => new ImpairCore(settings({ rateBps: [4e6, 10], rateEveryMs: 1000 }), 1), /^--rate must be 1k-100G bits\/s, got 10$/);
    usage(() => new ImpairCore(settings({ rateBps: 4e6, queueMs: 61_000 }), 1), /^--queue must be 0-60s as a time, got 61000 ms$/);
    assert.throws(() => new ImpairCore(settings({ rateBps: 4e6, queueMs: 10, queuePackets: 10 }), 1), RangeError);
  });
});

describe('impair core: determinism and invariants', () => {
  const all = settings({ loss: 0.1, burst: 3, delayMs: 10, jitterMs: 15, reorder: 0.05, duplicate: 0.05, rateBps: 5e6, queuePackets: 30 });

  test('same seed → the same decisions; another seed → different ones', () => {
    const a = run(new ImpairCore(all, 42), 5000, 0.3, 700);
    const b = run(new ImpairCore(all, 42), 5000, 0.3, 700);
    const c = run(new ImpairCore(all, 43), 5000, 0.3, 700);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  test('each choice has its own random stream: adding delay, jitter or duplicates keeps the loss pattern', () => {
    const lossOnly = run(new ImpairCore(settings({ loss: 0.1 }), 8), 5000).map((d) => d.kind);
    const more = run(new ImpairCore(settings({ loss: 0.1, delayMs: 30, jitterMs: 10, duplicate: 0.2, reorder: 0.1 }), 8), 5000).map((d) => d.kind);
    assert.deepEqual(more, lossOnly);
  });

  test('the PRNG is uniform on [0, 1) and seeds 0, 1, 2 start apart', () => {
    const r = new Prng(0);
    const bins = new Array(10).fill(0);
    for (let i = 0; i < N; i++) {
      const x = r.next();
      assert.ok(x >= 0 && x < 1);
      bins[Math.floor(x * 10)]++;
    }
    for (const b of bins) assertBinomial(b, N, 0.1, 'bin');
    const firsts = [0, 1, 2].map((s) => new Prng(s).next());
    assert.equal(new Set(firsts).size, 3);
  });

  test('property: every datagram is accounted for, nothing leaves early, unreordered order is kept', () => {
    const arb = fc.record({
      loss: fc.double({ min: 0, max: 0.5, noNaN: true }),
      burst: fc.integer({ min: 1, max: 5 }),
      delayMs: fc.integer({ min: 0, max: 50 }),
      jitterMs: fc.integer({ min: 0, max: 50 }),
      reorder: fc.double({ min: 0, max: 0.3, noNaN: true }),
      duplicate: fc.double({ min: 0, max: 0.3, noNaN: true }),
      rateBps: fc.option(fc.integer({ min: 10_000, max: 10_000_000 }), { nil: undefined }),
      queuePackets: fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }),
    });
    const arrivals = fc.array(fc.record({ gap: fc.double({ min: 0, max: 20, noNaN: true }), size: fc.integer({ min: 1, max: 1500 }) }), { maxLength: 300 });
    fc.assert(
      fc.property(arb, arrivals, fc.integer(), (s, xs, seed) => {
        const core = new ImpairCore(s, seed);
        let now = 0;
        let last = -Infinity;
        for (const x of xs) {
          now += x.gap;
          const d = core.decide(x.size, now);
          if (d.kind === 'drop') continue;
          if (d.sendAt < now + s.delayMs) return false;
          if (d.copies !== 1 && d.copies !== 2) return false;
          if (!d.reordered) {
            if (d.sendAt < last) return false;
            last = d.sendAt;
          }
        }
        const c = core.counters;
        return c.received === xs.length && c.received === c.forwarded + c.lost + c.lostBurst + c.rateDropped + c.overflow;
      }),
      { numRuns: 200 },
    );
  });
});

describe('impair core: helpers', () => {
  test('MinHeap pops in order, ties in insertion order when the key says so', () => {
    const h = new MinHeap<[number, number]>((a, b) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]));
    const xs = [5, 1, 4, 1, 5, 9, 2, 6, 5, 3].map((k, i) => [k, i] as [number, number]);
    xs.forEach((x) => h.push(x));
    const out: [number, number][] = [];
    for (let x = h.pop(); x; x = h.pop()) out.push(x);
    assert.deepEqual(out, [...xs].sort((a, b) => a[0] - b[0] || a[1] - b[1]));
  });

  test('ClientTable: bounded, and an idle entry expires while a touched one stays', () => {
    const t = new ClientTable<string>(2, 1000);
    assert.ok(t.add('a', 'A', 0));
    assert.ok(t.add('b', 'B', 0));
    assert.equal(t.add('c', 'C', 0), false, 'full');
    assert.equal(t.touch('a', 900), 'A');
    assert.deepEqual(t.expire(999), []);
    assert.deepEqual(t.expire(1000), ['B']);
    assert.ok(t.add('c', 'C', 1000));
    assert.deepEqual(t.expire(1900), ['A']);
    assert.deepEqual(t.clear(), ['C']);
    assert.equal(t.size, 0);
  });
});

// ---- Real sockets ------------------------------------------------------------------------------
function udp(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => resolve(s));
  });
}

/** Echoes every datagram to its sender and remembers which source ports it saw. */
async function echoServer(): Promise<{ socket: dgram.Socket; port: number; sources: Set<number> }> {
  const socket = await udp();
  const sources = new Set<number>();
  socket.on('message', (m, r) => {
    sources.add(r.port);
    socket.send(m, r.port, r.address);
  });
  return { socket, port: socket.address().port, sources };
}

const closeSocket = (s: dgram.Socket) => new Promise<void>((r) => s.close(() => r()));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

const numbered = (i: number, tag = 0) => {
  const b = Buffer.alloc(100);
  b.writeUInt32BE(i, 0);
  b.writeUInt32BE(tag, 4);
  return b;
};

describe('impair proxy on 127.0.0.1', () => {
  test('10% loss up, none down: the client gets back exactly what the proxy forwarded, and the counters add up', async () => {
    const echo = await echoServer();
    const client = await udp();
    const forwardedUp = new Set<number>();
    const droppedUp = new Set<number>();
    const forwardedDown = new Set<number>();
    const seed = 20240601;
    const proxy = await ImpairProxy.start({
      listenHost: '127.0.0.1',
      listenPort: 0,
      target: { host: '127.0.0.1', port: echo.port },
      up: settings({ loss: 0.1 }),
      down: NO_IMPAIRMENT,
      seed,
      onForward: (dir, d) => (dir === 'up' ? forwardedUp : forwardedDown).add(d.readUInt32BE(0)),
      onDrop: (dir, d, reason) => {
        assert.equal(dir, 'up');
        assert.equal(reason, 'loss');
        droppedUp.add(d.readUInt32BE(0));
      },
    });
    try {
      const got = new Set<number>();
      client.on('message', (m) => {
        const i = m.readUInt32BE(0);
        assert.ok(!got.has(i), `echo ${i} arrived twice`);
        got.add(i);
      });
      const n = 500;
      for (let i = 0; i < n; i++) {
        client.send(numbered(i), proxy.port, '127.0.0.1');
        if (i % 25 === 24) await sleep(2); // stay well inside the kernel's default receive buffers
      }
      await waitFor(() => droppedUp.size + forwardedUp.size === n && got.size === forwardedUp.size, 5000, 'all echoes');
      await sleep(50); // anything extra would show up now
      assert.deepEqual([...got].sort((a, b) => a - b), [...forwardedUp].sort((a, b) => a - b));
      assert.deepEqual(forwardedDown, forwardedUp);
      const c = proxy.counters;
      assert.equal(c.up.received, n);
      assert.equal(c.up.received, c.up.forwarded + c.up.lost);
      assert.equal(c.up.lost, droppedUp.size);
      assertBinomial(c.up.lost, n, 0.1, 'lost up');
      assert.equal(c.down.received, c.up.forwarded);
      assert.equal(c.down.forwarded, c.down.received);
      assert.equal(c.up.bytes, c.up.forwarded * 100);
      // The seed makes the run reproducible: a bare core with the same seed drops the same datagrams.
      const core = new ImpairCore(settings({ loss: 0.1 }), seed);
      const expectDropped = new Set(Array.from({ length: n }, (_, i) => i).filter(() => core.decide(100, 0).kind === 'drop'));
      assert.deepEqual(droppedUp, expectDropped);
      assert.match(proxy.summary(), /^up +client → target: received 500, forwarded \d+ .*lost \d+ random \+ 0 burst/m);
      assert.match(proxy.summary(), /^down target → client: received \d+/m);
    } finally {
      await proxy.close();
      await closeSocket(client);
      await closeSocket(echo.socket);
    }
  });

  test('delay in both directions adds at least their sum to the round trip', async () => {
    const echo = await echoServer();
    const client = await udp();
    const proxy = await ImpairProxy.start({
      listenHost: '127.0.0.1',
      listenPort: 0,
      target: { host: '127.0.0.1', port: echo.port },
      up: settings({ delayMs: 30 }),
      down: settings({ delayMs: 20 }),
      seed: 1,
    });
    try {
      const sentAt = new Map<number, number>();
      const rtts: number[] = [];
      client.on('message', (m) => rtts.push(performance.now() - sentAt.get(m.readUInt32BE(0))!));
      for (let i = 0; i < 10; i++) {
        sentAt.set(i, performance.now());
        client.send(numbered(i), proxy.port, '127.0.0.1');
        await sleep(10);
      }
      await waitFor(() => rtts.length === 10, 5000, 'ten echoes');
      const min = Math.min(...rtts);
      assert.ok(min >= 50, `min RTT ${min.toFixed(2)} ms < 30 + 20 ms`);
      assert.ok(min < 400, `min RTT ${min.toFixed(2)} ms`);
    } finally {
      await proxy.close();
      await closeSocket(client);
      await closeSocket(echo.socket);
    }
  });

  test('two clients at once: each has its own source port at the target and gets only its own replies', async () => {
    const echo = await echoServer();
    const a = await udp();
    const b = await udp();
    const proxy = await ImpairProxy.start({ listenHost: '127.0.0.1', listenPort: 0, target: { host: '127.0.0.1', port: echo.port }, up: NO_IMPAIRMENT, down: NO_IMPAIRMENT, seed: 1 });
    try {
      const got: Record<string, number[]> = { a: [], b: [] };
      a.on('message', (m) => got.a.push(m.readUInt32BE(4)));
      b.on('message', (m) => got.b.push(m.readUInt32BE(4)));
      for (let i = 0; i < 20; i++) {
        a.send(numbered(i, 0xa), proxy.port, '127.0.0.1');
        b.send(numbered(i, 0xb), proxy.port, '127.0.0.1');
      }
      await waitFor(() => got.a.length === 20 && got.b.length === 20, 5000, 'both clients’ echoes');
      assert.ok(got.a.every((t) => t === 0xa) && got.b.every((t) => t === 0xb));
      assert.equal(echo.sources.size, 2, 'one upstream port per client');
      assert.ok(!echo.sources.has(proxy.port));
      assert.equal(proxy.natCounters.clients, 2);
    } finally {
      await proxy.close();
      await Promise.all([a, b, echo.socket].map(closeSocket));
    }
  });

  test('the client table is bounded and forgets idle clients', async () => {
    const echo = await echoServer();
    const a = await udp();
    const b = await udp();
    const refused: Direction[] = [];
    const proxy = await ImpairProxy.start({
      listenHost: '127.0.0.1',
      listenPort: 0,
      target: { host: '127.0.0.1', port: echo.port },
      up: NO_IMPAIRMENT,
      down: NO_IMPAIRMENT,
      seed: 1,
      maxClients: 1,
      idleMs: 100,
      onDrop: (dir, _d, reason) => reason === 'refused' && refused.push(dir),
    });
    try {
      let aGot = 0;
      let bGot = 0;
      a.on('message', () => aGot++);
      b.on('message', () => bGot++);
      a.send(numbered(1), proxy.port, '127.0.0.1');
      await waitFor(() => aGot === 1, 2000, 'a’s echo');
      b.send(numbered(2), proxy.port, '127.0.0.1');
      await waitFor(() => refused.length === 1, 2000, 'b refused');
      assert.equal(proxy.natCounters.refused, 1);
      assert.equal(bGot, 0);
      await waitFor(() => proxy.natCounters.clients === 0, 2000, 'a to expire');
      assert.equal(proxy.natCounters.expired, 1);
      b.send(numbered(3), proxy.port, '127.0.0.1');
      await waitFor(() => bGot === 1, 2000, 'b’s echo once a is gone');
      assert.equal(echo.sources.size, 2, 'b got a fresh upstream socket');
    } finally {
      await proxy.close();
      await Promise.all([a, b, echo.socket].map(closeSocket));
    }
  });

  test('a port in use makes start() reject with EADDRINUSE (its socket is closed, so this file still ends)', async () => {
    const taken = await udp();
    try {
      await assert.rejects(
        ImpairProxy.start({ listenHost: '127.0.0.1', listenPort: taken.address().port, target: { host: '127.0.0.1', port: 9 }, up: NO_IMPAIRMENT, down: NO_IMPAIRMENT, seed: 1 }),
        (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE',
      );
    } finally {
      await closeSocket(taken);
    }
  });

  test('a rate schedule logs one line per step with its wall-clock time; a fixed rate logs none', async () => {
    const lines: string[] = [];
    const before = Date.now();
    const proxy = await ImpairProxy.start({
      listenHost: '127.0.0.1',
      listenPort: 0,
      target: { host: '127.0.0.1', port: 9 }, // no traffic: the steps run on their own clock
      up: settings({ rateBps: [4e6, 1e6], rateEveryMs: 100 }),
      down: settings({ rateBps: 10e6 }),
      seed: 1,
      log: (line) => lines.push(line),
    });
    const after = Date.now();
    try {
      assert.equal(lines.length, 0, 'the first line comes after the caller’s own start lines');
      await waitFor(() => lines.length >= 3, 2000, 'three rate lines');
    } finally {
      await proxy.close();
    }
    const seen = lines.slice(0, 3).map((line) => {
      const m = /^impair: up rate now (\d+) Mbit\/s \((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\)$/.exec(line);
      assert.ok(m, `line: ${line}`);
      return { mbps: Number(m[1]), at: Date.parse(m[2]) };
    });
    assert.deepEqual(seen.map((x) => x.mbps), [4, 1, 4], 'the start, the step down, the step back up');
    // The start line carries the start's time, whenever it was printed; each step is 100 ms after the
    // last, to the millisecond rounding of Date and of the ISO string.
    assert.ok(seen[0].at >= before - 2 && seen[0].at <= after + 2, `start at ${seen[0].at}, between ${before} and ${after}`);
    for (let i = 1; i < 3; i++) assert.ok(Math.abs(seen[i].at - seen[i - 1].at - 100) <= 3, `step ${i} ${seen[i].at - seen[i - 1].at} ms after the one before`);
    const count = lines.length;
    await sleep(250);
    assert.equal(lines.length, count, 'no line after close()');
    assert.ok(lines.every((l) => l.startsWith('impair: up ')), 'down has a fixed rate: no line');
  });

  test('close() cancels what is scheduled, releases every socket, and can be called twice', async () => {
    const echo = await echoServer();
    const client = await udp();
    const proxy = await ImpairProxy.start({
      listenHost: '127.0.0.1',
      listenPort: 0,
      target: { host: '127.0.0.1', port: echo.port },
      up: settings({ delayMs: 2000 }),
      down: NO_IMPAIRMENT,
      seed: 1,
    });
    const port = proxy.port;
    try {
      for (let i = 0; i < 5; i++) client.send(numbered(i), port, '127.0.0.1');
      await waitFor(() => proxy.pending === 5, 2000, 'five scheduled');
    } finally {
      await Promise.all([proxy.close(), proxy.close()]);
    }
    assert.equal(proxy.counters.up.cancelled, 5);
    assert.equal(proxy.counters.up.forwarded, 5, 'forwarded counts what was scheduled');
    assert.equal(echo.sources.size, 0, 'nothing reached the target');
    // The listening port is free again.
    const again = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.bind(port, '127.0.0.1', () => resolve());
    });
    await closeSocket(again);
    await closeSocket(client);
    await closeSocket(echo.socket);
  });
});

// ---- Parsing -----------------------------------------------------------------------------------
function usage(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UsageError, `expected UsageError, got ${String(e)}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

describe('impair options', () => {
  test('parsePercent: "5%" and "5" are both 5%', () => {
    assert.equal(parsePercent('loss', '5%'), 0.05);
    assert.equal(parsePercent('loss', '5'), 0.05);
    assert.equal(parsePercent('loss', 5), 0.05);
    assert.equal(parsePercent('loss', '0.5%'), 0.005);
    assert.equal(parsePercent('loss', '100%'), 1);
    assert.equal(parsePercent('loss', '0'), 0);
    usage(() => parsePercent('loss', '150%'), /^--loss must be 0-100%.*, got 150%$/);
    usage(() => parsePercent('loss', '150'), /^--loss must be 0-100%.*, got 150%$/);
    usage(() => parsePercent('up-reorder', '-1%'), /^--up-reorder must be 0-100%.*got -1%$/);
    usage(() => parsePercent('duplicate', 'lots'), /^--duplicate must be 0-100%.*got lots$/);
    usage(() => parsePercent('loss', ''), /^--loss .*got ""$/);
  });

  test('parseMs: "10ms", "0.5s" and a bare number of milliseconds', () => {
    assert.equal(parseMs('delay', '10ms'), 10);
    assert.equal(parseMs('delay', '0.5s'), 500);
    assert.equal(parseMs('delay', '10'), 10);
    assert.equal(parseMs('jitter', '2.5ms'), 2.5);
    assert.equal(parseMs('jitter', '0'), 0);
    usage(() => parseMs('delay', '10min'), /^--delay must be 0-60s .*got 10min$/);
    usage(() => parseMs('jitter', '-5ms'), /^--jitter must be .*got -5ms$/);
    usage(() => parseMs('delay', '61s'), /^--delay must be 0-60s/);
  });

  test('parseRate: bits per second with k, M, G', () => {
    assert.equal(parseRate('rate', '10M'), 10e6);
    assert.equal(parseRate('rate', '500k'), 500e3);
    assert.equal(parseRate('rate', '1G'), 1e9);
    assert.equal(parseRate('rate', '2.5Mbit'), 2.5e6);
    assert.equal(parseRate('rate', '64kbps'), 64e3);
    assert.equal(parseRate('rate', '8000'), 8000);
    usage(() => parseRate('rate', '10X'), /^--rate must be 1k-100G bits\/s .*got 10X$/);
    usage(() => parseRate('down-rate', '0'), /^--down-rate must be 1k-100G/);
    usage(() => parseRate('rate', '200G'), /got 200G$/);
  });

  test('per-direction settings: --X for both, --up-X / --down-X override one', () => {
    const s = impairSettings({ loss: '5%', downLoss: '0', delay: '10ms', upJitter: '20ms', rate: '10M', burst: 3, reorderGap: '5ms' });
    assert.equal(s.up.loss, 0.05);
    assert.equal(s.down.loss, 0);
    assert.equal(s.up.delayMs, 10);
    assert.equal(s.down.delayMs, 10);
    assert.equal(s.up.jitterMs, 20);
    assert.equal(s.down.jitterMs, 0);
    assert.equal(s.up.rateBps, 10e6);
    assert.equal(s.up.burst, 3);
    assert.equal(s.down.reorderGapMs, 5);
    assert.equal(s.down.rateBps, 10e6);
    assert.deepEqual(impairSettings({}).up, { ...NO_IMPAIRMENT, rateBps: undefined, queuePackets: undefined, reorderGapMs: undefined });
    usage(() => impairSettings({ upLoss: '101%' }), /^--up-loss must be 0-100%/);
    usage(() => impairSettings({ downDelay: 'soon' }), /^--down-delay must be/);
    usage(() => impairSettings({ burst: '0' }), /^--burst must be a whole number 1-1000, got 0$/);
    usage(() => impairSettings({ loss: '90%', upBurst: '4' }), /^--loss with --up-burst 4 must be at most 80%/);
  });

  test('parseRates: one rate is a number as before, a comma-separated list a schedule; a bad item is named', () => {
    assert.equal(parseRates('rate', '4M'), 4e6);
    assert.deepEqual(parseRates('rate', '4M,1M'), [4e6, 1e6]);
    assert.deepEqual(parseRates('up-rate', ' 4M , 500k,2.5Mbit '), [4e6, 500e3, 2.5e6]);
    usage(() => parseRates('rate', '4M,1X'), /^--rate must be 1k-100G bits\/s \(e\.g\. 500k, 10M or 1G\), got 1X \(in 4M,1X\)$/);
    usage(() => parseRates('down-rate', '4M,,1M'), /^--down-rate must be 1k-100G .*got "" \(in 4M,,1M\)$/);
    usage(() => parseRates('rate', '4M,0'), /got 0 \(in 4M,0\)$/);
    usage(() => parseRates('rate', Array(101).fill('1M').join(',')), /^--rate takes at most 100 rates, got 101$/);
  });

  test('parseRateEvery: a duration of 100ms-3600s', () => {
    assert.equal(parseRateEvery('rate-every', '15s'), 15_000);
    assert.equal(parseRateEvery('rate-every', '100ms'), 100);
    assert.equal(parseRateEvery('rate-every', '3600s'), 3_600_000);
    usage(() => parseRateEvery('rate-every', '50ms'), /^--rate-every must be 100ms-3600s \(e\.g\. 15s; a bare number is milliseconds\), got 50ms$/);
    usage(() => parseRateEvery('up-rate-every', '3601s'), /^--up-rate-every must be 100ms-3600s .*got 3601s$/);
    usage(() => parseRateEvery('rate-every', '15'), /got 15$/);
    usage(() => parseRateEvery('rate-every', '1h'), /got 1h$/);
  });

  test('parseQueue: a bare number is datagrams as before, with a unit a time', () => {
    assert.deepEqual(parseQueue('queue', '100'), { packets: 100 });
    assert.deepEqual(parseQueue('queue', 0), { packets: 0 });
    assert.deepEqual(parseQueue('queue', '100ms'), { ms: 100 });
    assert.deepEqual(parseQueue('queue', '0.1s'), { ms: 100 });
    assert.deepEqual(parseQueue('queue', '0ms'), { ms: 0 });
    const wrong = /^--queue must be a whole number of datagrams 0-100000 or a time 0-60s \(e\.g\. 100 or 100ms\), got /;
    usage(() => parseQueue('queue', '0.5'), new RegExp(wrong.source + '0\\.5$'));
    usage(() => parseQueue('queue', '100001'), new RegExp(wrong.source + '100001$'));
    usage(() => parseQueue('queue', '61s'), new RegExp(wrong.source + '61s$'));
    usage(() => parseQueue('up-queue', 'deep'), /^--up-queue must be .*got deep$/);
  });

  test('rate schedule and time queue through impairSettings, per direction', () => {
    const s = impairSettings({ rate: '4M,1M', rateEvery: '15s', queue: '100ms' });
    assert.deepEqual([s.up.rateBps, s.up.rateEveryMs, s.up.queueMs, s.up.queuePackets], [[4e6, 1e6], 15_000, 100, undefined]);
    assert.deepEqual(s.down, s.up);
    // A shared --rate-every serves the direction that has a schedule; --down-rate 10M stays fixed.
    const mixed = impairSettings({ rate: '4M,1M', rateEvery: '15s', downRate: '10M', upQueue: '50ms', queue: '20' });
    assert.deepEqual([mixed.up.rateBps, mixed.up.rateEveryMs, mixed.up.queueMs], [[4e6, 1e6], 15_000, 50]);
    assert.deepEqual([mixed.down.rateBps, mixed.down.rateEveryMs, mixed.down.queuePackets, 'queueMs' in mixed.down], [10e6, undefined, 20, false]);
    // The direction's own value wins.
    const own = impairSettings({ rate: '4M,1M', rateEvery: '15s', upRateEvery: '1s' });
    assert.deepEqual([own.up.rateEveryMs, own.down.rateEveryMs], [1000, 15_000]);
    assert.equal(impairSettings({ upRate: '1M,2M', upRateEvery: '500ms' }).down.rateBps, undefined);
    assert.equal(impairSettings({ rate: '4M' }).up.rateBps, 4e6, 'one rate: a number, exactly as before');
    // Mistakes, one line each, naming the option as typed.
    usage(() => impairSettings({ rate: '4M,1M' }), /^--rate 4M,1M is a schedule: add --rate-every DURATION, how long each rate holds \(e\.g\. 15s\)$/);
    usage(() => impairSettings({ upRate: '4M,1M' }), /^--up-rate 4M,1M is a schedule: add --up-rate-every DURATION/);
    usage(() => impairSettings({ rate: '4M,1M', upRateEvery: '15s' }), /^--rate 4M,1M is a schedule: add --rate-every/); // down has none
    usage(() => impairSettings({ rate: '4M', rateEvery: '15s' }), /^--rate-every needs --rate to list two or more rates \(e\.g\. 4M,1M\), got --rate 4M$/);
    usage(() => impairSettings({ rateEvery: '15s' }), /^--rate-every needs --rate .*got no --rate$/);
    usage(() => impairSettings({ rate: '4M', upRateEvery: '15s' }), /^--up-rate-every needs --up-rate \(or --rate\) to list two or more rates \(e\.g\. 4M,1M\), got --rate 4M$/);
    usage(() => impairSettings({ rate: '4M,1M', rateEvery: '10ms' }), /^--rate-every must be 100ms-3600s/);
    usage(() => impairSettings({ rate: '4M,1M', downRateEvery: '2h', rateEvery: '1s' }), /^--down-rate-every must be 100ms-3600s .*got 2h$/);
    usage(() => impairSettings({ rate: '4M,fast', rateEvery: '1s' }), /^--rate must be 1k-100G .*got fast \(in 4M,fast\)$/);
    usage(() => impairSettings({ downQueue: '1.5' }), /^--down-queue must be a whole number of datagrams/);
    // The checks also run in the core, for settings built in code.
    assert.doesNotThrow(() => new ImpairCore(s.up, 1));
  });

  test('describeSettings: a schedule and a time queue', () => {
    assert.equal(describeSettings(impairSettings({ rate: '4M,1M', rateEvery: '15s', queue: '100ms' }).up), 'rate 4 Mbit/s, 1 Mbit/s every 15 s (queue 100 ms)');
    assert.equal(describeSettings(impairSettings({ rate: '4M,500k,1M', rateEvery: '250ms' }).up), 'rate 4 Mbit/s, 500 kbit/s, 1 Mbit/s every 250 ms (queue 100)');
    assert.equal(describeSettings(impairSettings({ rate: '10M', queue: '0.5s' }).up), 'rate 10 Mbit/s (queue 500 ms)');
    assert.equal(describeSettings(impairSettings({ rate: '10M' }).up), 'rate 10 Mbit/s (queue 100)', 'as before');
  });

  test('impairOptions: listen, to, seed', () => {
    const o = impairOptions({ listen: '9000', to: '127.0.0.1:5004', seed: '7', loss: '1%' });
    assert.deepEqual([o.listenHost, o.listenPort, o.target, o.seed, o.seedChosen], ['0.0.0.0', 9000, { host: '127.0.0.1', port: 5004 }, 7, false]);
    assert.equal(o.up.loss, 0.01);
    const v6 = impairOptions({ listen: '[::1]:9000', to: 'relay.example:5004' });
    assert.deepEqual(impairOptions({ listen: '127.0.0.1:0', to: '[::1]:5004' }).target, { host: '::1', port: 5004 });
    assert.equal(impairOptions({ listen: '127.0.0.1:0', to: 'a:1' }).listenPort, 0);
    assert.equal(v6.listenHost, '::1');
    assert.ok(v6.seedChosen && Number.isInteger(v6.seed) && v6.seed >= 0 && v6.seed <= 0xffffffff);
    usage(() => impairOptions({ to: 'a:1' }), /^--listen is required/);
    usage(() => impairOptions({ listen: '9000' }), /^--to is required/);
    usage(() => impairOptions({ listen: '9000', to: 'localhost' }), /^--to must be HOST:PORT/);
    usage(() => impairOptions({ listen: '70000', to: 'a:1' }), /^--listen must be 0-65535, got 70000$/);
    usage(() => impairOptions({ listen: '9000', to: 'a:1', seed: '-3' }), /^--seed must be a whole number 0-4294967295, got -3$/);
  });
});

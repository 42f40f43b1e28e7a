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
  impairSettings,
  maxBurstLoss,
  parseMs,
  parsePercent,
  parseRate,
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

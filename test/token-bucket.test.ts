// The one token bucket behind every rate limit of the relay, driven by a fake clock.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TokenBucket, TokenBucketTable } from '../src/util/token-bucket.ts';

describe('TokenBucket', () => {
  test('starts full and gives out at most its burst at one instant', () => {
    const b = new TokenBucket(10, 5, 1000);
    let taken = 0;
    for (let i = 0; i < 20; i++) if (b.take(1000)) taken++;
    assert.equal(taken, 5);
    assert.equal(b.take(1000), false);
  });

  test('refills at rate tokens per second, pro rata', () => {
    const b = new TokenBucket(10, 5, 0, 0);
    assert.equal(b.take(99), false, '0.99 of a token after 99 ms');
    assert.equal(b.take(100), true, 'one token after 100 ms');
    assert.equal(b.take(100), false);
    assert.equal(b.refill(350), 2.5);
  });

  test('refill stops at the burst cap, however long the pause', () => {
    const b = new TokenBucket(1000, 16, 0, 0);
    assert.equal(b.refill(3_600_000), 16);
  });

  test('a failed take takes nothing', () => {
    const b = new TokenBucket(1, 3, 0, 2);
    assert.equal(b.take(0, 3), false);
    assert.equal(b.tokens, 2);
    assert.equal(b.take(0, 2), true);
    assert.equal(b.tokens, 0);
  });

  test('time going backwards mints nothing, now or when time catches up', () => {
    const b = new TokenBucket(10, 10, 1000, 0);
    assert.equal(b.refill(500), 0, 'a step back adds nothing');
    assert.equal(b.refill(1000), 0, 'and the interval back to the latest time is not paid twice');
    assert.equal(b.refill(1100), 1);
    assert.equal(b.take(900), true, 'tokens already earned can still be taken');
    assert.equal(b.refill(1100), 0);
  });

  test('spend overdraws; the debt is repaid before anything can be taken', () => {
    const b = new TokenBucket(1000, 100, 0);
    b.spend(1500);
    assert.equal(b.tokens, -1400);
    assert.equal(b.take(1400), false, 'still 0 after 1.4 s');
    assert.equal(b.take(1401), true);
  });

  test('property: never more than burst + rate × elapsed taken, with any order of times', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 200 }), (times) => {
        const b = new TokenBucket(50, 20, 0);
        let taken = 0;
        for (const t of times) if (b.take(t)) taken++;
        const latest = Math.max(...times);
        assert.ok(taken <= 20 + (50 * latest) / 1000 + 1e-9, `${taken} taken by ${latest} ms`);
      }),
    );
  });
});

describe('TokenBucketTable', () => {
  test('buckets are independent, full at the start, and refill alike', () => {
    const t = new TokenBucketTable(4, 10, 2);
    assert.equal(t.take(0, 0), true);
    assert.equal(t.take(0, 0), true);
    assert.equal(t.take(0, 0), false);
    assert.equal(t.take(1, 0), true, 'another bucket is untouched');
    assert.equal(t.take(0, 100), true, 'one token per 100 ms');
    assert.equal(t.take(0, 100), false);
  });

  test('time going backwards mints nothing', () => {
    const t = new TokenBucketTable(1, 10, 1);
    assert.equal(t.take(0, 5000), true);
    assert.equal(t.take(0, 4000), false);
    assert.equal(t.take(0, 5000), false);
    assert.equal(t.take(0, 5100), true);
  });
});

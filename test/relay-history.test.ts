// Retransmission history and the NACK responder, driven by packets and a fake clock.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { RtxHistory, answerNack, rtxBudget } from '../src/relay/history.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { RTX_HISTORY_PACKETS, RTX_MAX_PER_SECOND } from '../src/defaults.ts';
import { TokenBucket } from '../src/util/token-bucket.ts';

const rtp = (seq: number) =>
  serializeRtpToBuffer({ padding: 0, marker: false, payloadType: 96, sequenceNumber: seq, timestamp: 0, ssrc: 0x1234, csrc: [], payload: Buffer.from([seq & 0xff]) });

describe('relay retransmission history', () => {
  test('keeps the received buffer itself, by sequence number', () => {
    const h = new RtxHistory();
    const p = rtp(7);
    h.store(p);
    assert.equal(h.get(7), p, 'the same buffer, not a copy');
    assert.equal(h.get(8), undefined);
  });

  test('a newer packet in the same slot hides the older one', () => {
    const h = new RtxHistory();
    h.store(rtp(5));
    h.store(rtp(5 + RTX_HISTORY_PACKETS));
    assert.equal(h.get(5), undefined);
    assert.ok(h.get(5 + RTX_HISTORY_PACKETS));
  });

  test('sequence numbers wrap: 65535 and 0 are both held', () => {
    const h = new RtxHistory();
    for (const s of [65534, 65535, 0, 1]) h.store(rtp(s));
    for (const s of [65534, 65535, 0, 1]) assert.equal(h.get(s)!.readUInt16BE(2), s);
  });

  test('clear forgets everything (a new publisher session)', () => {
    const h = new RtxHistory();
    h.store(rtp(1));
    h.clear();
    assert.equal(h.get(1), undefined);
  });

  test('a NACK is answered in the order asked; packets not held are misses and cost no budget', () => {
    const h = new RtxHistory();
    for (let s = 1; s <= 4; s++) h.store(rtp(s));
    const budget = new TokenBucket(10, 2, 0);
    const r = answerNack(h, [3, 99, 2], budget, 0);
    assert.deepEqual(r.resend.map((b) => b.readUInt16BE(2)), [3, 2]);
    assert.equal(r.misses, 1);
    assert.equal(budget.tokens, 0);
  });

  test('over the budget is a miss, and the budget refills with time', () => {
    const h = new RtxHistory();
    h.store(rtp(1));
    const budget = rtxBudget(0);
    let resent = 0;
    let misses = 0;
    for (let i = 0; i < RTX_MAX_PER_SECOND + 50; i++) {
      const r = answerNack(h, [1], budget, 0);
      resent += r.resend.length;
      misses += r.misses;
    }
    assert.equal(resent, RTX_MAX_PER_SECOND);
    assert.equal(misses, 50);
    assert.equal(answerNack(h, [1, 1], budget, 1).resend.length, 1, 'one more per ms at 1000 a second');
  });
});

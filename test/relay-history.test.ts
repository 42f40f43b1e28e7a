// Retransmission history and the NACK responder, driven by packets and a fake clock.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { RtxBudget, RtxHistory, answerNack } from '../src/relay/history.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { RTX_BURST, RTX_HISTORY_PACKETS, RTX_MAX_PER_SECOND, RTX_SHARE } from '../src/defaults.ts';

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
    const budget = new RtxBudget(0, 0);
    const r = answerNack(h, [3, 99, 2], budget, 0, 0);
    assert.deepEqual(r.resend.map((b) => b.readUInt16BE(2)), [3, 2]);
    assert.equal(r.misses, 1);
    // What is left: RTX_BURST - 2, and no more without new datagrams sent.
    const more = answerNack(h, Array(RTX_BURST).fill(1), budget, 0, 1000);
    assert.equal(more.resend.length, RTX_BURST - 2);
  });

  test('retransmissions are at most RTX_SHARE of what the stream sent the viewer, beyond a burst in hand', () => {
    const h = new RtxHistory();
    h.store(rtp(1));
    const budget = new RtxBudget(0, 0);
    const ask = (n: number, fanOuts: number, now: number) => answerNack(h, Array(n).fill(1), budget, fanOuts, now).resend.length;
    assert.equal(ask(RTX_BURST + 10, 0, 0), RTX_BURST, 'a burst in hand');
    assert.equal(ask(10, 0, 1000), 0, 'time alone earns nothing');
    // 400 datagrams sent since: a quarter of them may be re-sent.
    assert.equal(ask(1000, 400, 2000), 400 * RTX_SHARE);
    // A long quiet spell earns at most the burst.
    assert.equal(ask(10_000, 1_000_000, 3000), RTX_BURST);
  });

  test('and at most RTX_MAX_PER_SECOND, however much the stream sends', () => {
    const h = new RtxHistory();
    h.store(rtp(1));
    const budget = new RtxBudget(0, 0);
    let resent = 0;
    let fanOuts = 0;
    // RTX_BURST at a time, with enough datagrams sent between asks to earn it again, all in one ms.
    for (let i = 0; i < 20; i++) {
      resent += answerNack(h, Array(RTX_BURST).fill(1), budget, fanOuts, 0).resend.length;
      fanOuts += RTX_BURST / RTX_SHARE;
    }
    assert.equal(resent, RTX_MAX_PER_SECOND);
  });
});

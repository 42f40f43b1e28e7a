// Admission on its own: address proof, keys and per-source limits, driven by a fake clock.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Admission } from '../src/relay/admission.ts';
import { COOKIE_ROTATE_MS } from '../src/relay/cookie.ts';
import { newRelayCounters } from '../src/relay/counters.ts';
import { ControlType, RefuseReason, controlApp, parseControl, type SubscribeMessage } from '../src/transport/control.ts';
import { parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';
import { appendAuthTag, deriveWatchKey, streamKeys, watchProof, type MasterKey } from '../src/transport/secure.ts';
import { TokenBucket } from '../src/util/token-bucket.ts';

const viewer = { address: '10.0.0.2', port: 5000 };
const other = { address: '10.0.0.3', port: 5000 };
const subscribeBytes = serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream: 'main' }, 0x777)]).length;
const control = (data: Buffer) => parseControl(parseRtcp(data)[0] as never)!;

function cookieFor(a: Admission, from = viewer, now = 0): Buffer {
  const c = a.challenge('main', subscribeBytes, from, `${from.address}|${from.port}`, now);
  assert.ok(c, 'a CHALLENGE');
  const m = control(c);
  assert.ok(m.kind === ControlType.Challenge && m.cookie, 'a CHALLENGE with a cookie');
  return m.cookie;
}

describe('relay admission', () => {
  test('a viewer is proven only by a cookie issued to its own address, for one to two rotations', () => {
    const a = new Admission(0, {}, newRelayCounters());
    const sub = (cookie?: Buffer): SubscribeMessage => ({ kind: ControlType.Subscribe, stream: 'main', cookie });
    assert.equal(a.proveViewer(sub(), viewer), 'challenge');
    const cookie = cookieFor(a);
    assert.equal(a.proveViewer(sub(cookie), viewer), 'proven');
    assert.equal(a.proveViewer(sub(cookie), other), 'challenge', 'not from another address');
    a.tick(COOKIE_ROTATE_MS);
    assert.equal(a.proveViewer(sub(cookie), viewer), 'proven', 'the previous secret still verifies');
    a.tick(2 * COOKIE_ROTATE_MS);
    assert.equal(a.proveViewer(sub(cookie), viewer), 'challenge');
  });

  test('--watch-key: a proven address without the proof is refused and counted', () => {
    const counters = newRelayCounters();
    const master: MasterKey = { master: randomBytes(32) };
    const watchKey = deriveWatchKey(master);
    const a = new Admission(0, { watchKey }, counters);
    const cookie = cookieFor(a);
    assert.equal(a.proveViewer({ kind: ControlType.Subscribe, stream: 'main', cookie }, viewer), 'refuse');
    assert.equal(counters.authFailures, 1);
    const proof = watchProof(watchKey, cookie, Buffer.from('main', 'utf8'));
    assert.equal(a.proveViewer({ kind: ControlType.Subscribe, stream: 'main', cookie, proof }, viewer), 'proven');
    assert.equal(a.proveViewer({ kind: ControlType.Subscribe, stream: 'other', cookie, proof }, viewer), 'refuse', 'a proof is for one name');
  });

  test('a CHALLENGE is never larger than its request, and replies to one address are rate limited', () => {
    const counters = newRelayCounters();
    const a = new Admission(0, {}, counters);
    assert.equal(a.challenge('main', subscribeBytes - 1, viewer, 'v', 0), null);
    assert.equal(counters.malformed, 1);
    let replies = 0;
    for (let i = 0; i < 100; i++) if (a.challenge('main', subscribeBytes, viewer, 'v', 5)) replies++;
    for (let i = 0; i < 100; i++) if (a.refusal('main', RefuseReason.Taken, 'v', 5)) replies++;
    assert.equal(replies, 9, 'ten a second, and the oversize CHALLENGE took one of them');
    assert.equal(counters.rateLimited, 200 - replies);
    assert.ok(a.refusal('main', RefuseReason.Taken, 'v', 1005), 'the budget refills');
  });

  test('a known viewer keepalives within its budget', () => {
    const counters = newRelayCounters();
    const a = new Admission(0, {}, counters);
    const budget = new TokenBucket(10, 10, 0);
    let ok = 0;
    for (let i = 0; i < 50; i++) if (a.keepalive(budget, 0)) ok++;
    assert.equal(ok, 10);
    assert.equal(counters.rateLimited, 40);
  });

  test('--key: only a PUBLISH signed with the keys of the salt it announces gets through', () => {
    const counters = newRelayCounters();
    const master: MasterKey = { master: randomBytes(32) };
    const salt = randomBytes(16);
    const publish = serializeRtcp([controlApp({ kind: ControlType.Publish, stream: 'main', salt }, 0x1234)]);
    const signed = Buffer.concat(appendAuthTag(publish, streamKeys(master, salt).auth, 0));
    const keyed = new Admission(0, { key: master }, counters);
    const r = keyed.signedPublish(signed);
    assert.ok(r?.ok);
    assert.deepEqual(r.packet, publish);
    assert.equal(keyed.mayPublish(r.auth), true);
    assert.equal(keyed.mayPublish(undefined), false, 'an unsigned PUBLISH is refused');
    assert.equal(keyed.verifyPublisher(r.auth, signed), undefined, 'a replayed datagram fails');

    const wrong = Buffer.concat(appendAuthTag(publish, streamKeys({ master: randomBytes(32) }, salt).auth, 0));
    assert.deepEqual(keyed.signedPublish(wrong), { ok: false, stream: 'main', reason: RefuseReason.BadKey });
    assert.deepEqual(new Admission(0, {}, counters).signedPublish(signed), { ok: false, stream: 'main', reason: RefuseReason.RelayHasNoKey });
    assert.equal(keyed.signedPublish(Buffer.from('not rtcp at all, but long enough')), undefined);
    assert.equal(counters.authFailures, 3);
  });
});

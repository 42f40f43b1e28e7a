/**
 * The viewer's session with the relay (src/player/session.ts): the connection state a person sees
 * and the control client, driven by control messages and the clock.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ViewerSession } from '../src/player/session.ts';
import { ControlType, RefuseReason, controlApp, parseControl, type ControlMessage, type SubscribeMessage } from '../src/transport/control.ts';
import { parseRtcp } from '../src/transport/rtcp.ts';
import { watchProof } from '../src/transport/secure.ts';
import { VIEWER_STALL_MS } from '../src/defaults.ts';

const STREAM = 'main';
const ME = 0x11111111;
const PUBLISHER = 0x22222222;

/** A message from the relay, for STREAM unless it names another. */
const relay = (msg: DistributiveOmit<ControlMessage, 'stream'> & { stream?: string }) => controlApp({ stream: STREAM, ...msg } as ControlMessage, 0);
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The SUBSCRIBE inside a keepalive datagram. */
function subscribeIn(datagram: Buffer): SubscribeMessage {
  const app = parseRtcp(datagram).find((p) => p.type === 'app');
  assert.ok(app && app.type === 'app');
  const m = parseControl(app);
  assert.ok(m?.kind === ControlType.Subscribe, 'a SUBSCRIBE');
  return m;
}

describe('viewer session', () => {
  test('connecting → waiting → live → reconnecting → live → ended, and an ACK without a sharer keeps ended', () => {
    const log: string[] = [];
    const s = new ViewerSession(STREAM, ME, { log: (l) => log.push(l) });
    assert.equal(s.state, 'connecting');
    s.subscribe(0, []);
    s.heard(5);
    s.onApp(relay({ kind: ControlType.Ack, live: false }), 5);
    assert.equal(s.state, 'waiting');
    s.onApp(relay({ kind: ControlType.Ack, live: true }), 6);
    assert.equal(s.state, 'live');
    s.subscribe(5 + VIEWER_STALL_MS, []);
    assert.equal(s.state, 'live', 'silent for exactly the limit: not yet');
    s.subscribe(6 + VIEWER_STALL_MS, []);
    assert.equal(s.state, 'reconnecting');
    s.onMedia();
    assert.equal(s.state, 'live');
    s.onBye([0x3333], PUBLISHER);
    assert.equal(s.state, 'live', "another source's BYE");
    s.onBye([PUBLISHER], PUBLISHER);
    assert.equal(s.state, 'ended');
    s.onApp(relay({ kind: ControlType.Ack, live: false }), 7);
    assert.equal(s.state, 'ended', 'the sharer left: not merely "waiting"');
    s.onApp(relay({ kind: ControlType.Ack, live: true }), 8);
    assert.equal(s.state, 'live');
    s.onApp(relay({ kind: ControlType.Ended }), 9);
    assert.equal(s.state, 'ended');
    assert.deepEqual(log, [`stream ${STREAM}: sharer said goodbye`, `stream ${STREAM} ended by its sharer`]);
  });

  test('RTT from each SUBSCRIBE to its ACK; the salt is passed on; other streams are not ours', () => {
    const s = new ViewerSession(STREAM, ME);
    assert.deepEqual(s.onApp(relay({ kind: ControlType.Ack, live: true }), 3), { rttMs: undefined, salt: undefined }, 'no SUBSCRIBE out');
    s.subscribe(100, []);
    assert.deepEqual(s.onApp(relay({ kind: ControlType.Ack, live: true, stream: 'other' }), 110), {});
    const salt = Buffer.alloc(16, 9);
    const effect = s.onApp(relay({ kind: ControlType.Ack, live: true, salt }), 125);
    assert.equal(effect.rttMs, 25);
    assert.deepEqual(effect.salt, salt);
    assert.equal(s.onApp(relay({ kind: ControlType.Ack, live: true }), 130).rttMs, undefined, 'one sample per SUBSCRIBE');
    assert.equal(s.firstSubscribeAt, 100);
  });

  test('a CHALLENGE: subscribe again at once, echoing the cookie and, with --watch-key, the proof', () => {
    const watchKey = Buffer.alloc(32, 5);
    const s = new ViewerSession(STREAM, ME, { watchKey });
    assert.equal(subscribeIn(s.subscribe(0, [])).cookie, undefined);
    const cookie = Buffer.alloc(16, 0xc0);
    assert.deepEqual(s.onApp(relay({ kind: ControlType.Challenge, cookie }), 1), { resubscribe: true });
    const sub = subscribeIn(s.subscribe(1, []));
    assert.deepEqual(sub.cookie, cookie);
    assert.deepEqual(sub.proof, watchProof(watchKey, cookie, Buffer.from(STREAM, 'utf8')));
    const rr = parseRtcp(s.subscribe(2, [{ ssrc: PUBLISHER, fractionLost: 0, cumulativeLost: 0, highestSeq: 0, jitter: 0, lsr: 0, dlsr: 0 }]))[0];
    assert.ok(rr.type === 'rr' && rr.ssrc === ME && rr.reports[0].ssrc === PUBLISHER, 'our receiver report rides along');
  });

  test('REFUSED is fatal, in words', () => {
    const s = new ViewerSession(STREAM, ME);
    s.onApp(relay({ kind: ControlType.Refused, reason: RefuseReason.BadKey }), 0);
    assert.match(s.fatal ?? '', /needs the right --watch-key/);
    s.onApp(relay({ kind: ControlType.Refused, reason: RefuseReason.RelayHasNoKey }), 1);
    assert.match(s.fatal ?? '', /--watch-key/, 'the first reason stays');
  });

  test('a new sharer session is counted and logged; the first is not a restart', () => {
    const log: string[] = [];
    const s = new ViewerSession(STREAM, ME, { log: (l) => log.push(l) });
    s.onPublisher(PUBLISHER, false);
    s.onPublisher(0xabc, true);
    assert.equal(s.publisherRestarts, 1);
    assert.deepEqual(log, [`stream ${STREAM}: new sharer session (ssrc abc), following it`]);
  });
});

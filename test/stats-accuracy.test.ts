/**
 * Issue 4, "Accuracy against an independent judge": the loss and jitter udpcast watch reports,
 * checked against an RFC 3550 computation over exactly the packets a lossy, jittery proxy let through.
 *
 *   share ──► relay ──► ImpairProxy (in this process) ──► watch --stats-json
 *                          down: loss, delay + jitter (and reorder/duplicate in case 2)
 *                          up: untouched (subscriptions, receiver reports, NACKs)
 *
 * The proxy's hooks log every downstream RTP media packet: forwarded (with its scheduled send time,
 * which on loopback is its arrival time at the viewer) or dropped. The judge (helpers/rfc3550-judge.ts,
 * written from the RFC, sharing no code with src/transport/stats.ts) runs A.1/A.3/A.8 over the
 * forwarded packets in the order the viewer got them.
 *
 * Window alignment: both the viewer and the judge apply A.1 probation (MIN_SEQUENTIAL = 2 in
 * src/defaults.ts, as the RFC recommends). The first packet to arrive is not counted; the next one,
 * if it follows in sequence, becomes base_seq and is the first counted, for loss and for jitter.
 * The judge is fed every forwarded packet from the first, in arrival order, so it picks the same
 * base_seq. The window ends at the highest sequence number forwarded: the sharer stops first, the
 * proxy's delay line drains, and only then is the viewer stopped, so its final --stats-json line
 * ("final": true) covers the whole stream.
 *
 * Jitter is compared at every --stats-json line, not only the last. The A.8 estimate has a memory of
 * about 16 packets (two frames here), so one line is one short sample, and the judge's arrival times
 * are the proxy's schedule, not the viewer's clock: a scheduling stall in the viewer or in this
 * process near that moment (four processes and FFmpeg on a shared machine; the end of the stream,
 * when the sharer and FFmpeg exit, is the worst) moves one line by more than 25% although the viewer
 * computes correctly. Measured here: about one line in nine, up to +84% on a final line. So each
 * line is matched to the judge's estimate after the same number of counted packets (the same
 * packets, since both count the same ones in the same order), and the median line must be within
 * 25% (or 0.5 ms). A wrong clock rate, gain, unit or packet set moves every line and fails that;
 * one or two noisy lines do not.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpcast, killAll, exited, freePort, sleep, waitFor, type Running } from './helpers/cli.ts';
import { skipUnless } from './helpers/tools.ts';
import { judgeRfc3550, type Arrival, type JudgeResult } from './helpers/rfc3550-judge.ts';
import { ImpairProxy, type Direction } from '../src/impair/proxy.ts';
import { NO_IMPAIRMENT, type ImpairSettings } from '../src/impair/core.ts';
import { MIN_SEQUENTIAL, PT_H264, VIDEO_CLOCK_RATE } from '../src/defaults.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-accuracy-'));
after(killAll);
const skip = skipUnless('ffmpeg');

/** Seconds the sharer streams: ~150 frames, ~1350 packets at 25 fps and the default bitrate. */
const SHARE_SECONDS = 6;
/** Upper bound on the viewer's life; the test ends it with SIGTERM long before. */
const WATCH_SAFETY_SECONDS = 40;
/** Per case: startups (~1 s each through tsx, several on a busy machine), the stream, the drain. */
const CASE_TIMEOUT_MS = 28_000;
/** After the delay line is empty: the viewer's socket and event loop take the last datagrams. */
const SETTLE_MS = 300;

/** Issue 4: loss within ±2 packets; jitter within 25% or 0.5 ms, whichever is larger. */
const LOSS_TOLERANCE_PACKETS = 2;
const JITTER_TOLERANCE_FRACTION = 0.25;
const JITTER_TOLERANCE_MS = 0.5;
/** Not vacuous: the proxy really dropped more than this share, and introduced this much jitter. */
const MIN_DROP_FRACTION = 0.01;
const MIN_JUDGE_JITTER_MS = 0.5;
/** Jitter lines needed for a mean worth comparing (the stream gives ~6). */
const MIN_JITTER_LINES = 3;
/** Duplicates and late packets: the viewer's count within this of the judge's (boundary packets). */
const COUNT_TOLERANCE = 2;

// ---- The RTP fixed header, RFC 3550 §5.1 (read here by hand, not through src/rtp/packet.ts) ----
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                           timestamp                           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           synchronization source (SSRC) identifier            |
const RTP_FIXED_HEADER = 12;
const RTP_VERSION = 2;
/** RFC 5761 §4: a second byte of 192-223 is an RTCP packet type, not marker + payload type. */
const RTCP_SECOND_BYTE_MIN = 192;
const RTCP_SECOND_BYTE_MAX = 223;
const SEQ_MOD = 0x10000;

interface Media {
  seq: number;
  timestamp: number;
  ssrc: number;
}

/**
 * Sequence number, timestamp and SSRC of an H.264 media packet; undefined for RTCP and for other
 * payload types (FEC packets have their own, RFC 5109 §7.1).
 */
function media(d: Buffer): Media | undefined {
  if (d.length < RTP_FIXED_HEADER || d[0] >> 6 !== RTP_VERSION) return undefined;
  if (d[1] >= RTCP_SECOND_BYTE_MIN && d[1] <= RTCP_SECOND_BYTE_MAX) return undefined;
  if ((d[1] & 0x7f) !== PT_H264) return undefined;
  return { seq: d.readUInt16BE(2), timestamp: d.readUInt32BE(4), ssrc: d.readUInt32BE(8) };
}

interface Forwarded extends Media {
  sendAtMs: number;
  copies: number;
  /** Scheduling order: the proxy sends equal times in this order. */
  order: number;
}

interface Outcome {
  /** The viewer's --stats-json lines; the last is the final one. */
  lines: Array<Record<string, any>>;
  viewer: Record<string, any>;
  judge: JudgeResult;
  forwarded: Forwarded[];
  dropped: Media[];
  ssrcs: Set<number>;
  /** Distinct window sequence numbers the proxy dropped (the first sending or a retransmission). */
  droppedInWindow: number;
  /**
   * Of those, the ones a retransmission (same SSRC and sequence number) later got through in time
   * to be counted: A.1 ignores a packet more than MAX_MISORDER behind the highest, so a repair that
   * late is no repair.
   */
  repairedInWindow: number;
  /** Window sequence numbers the judge never counted, and those of them the proxy did forward (too late). */
  notCounted: number[];
  forwardedTooLate: number;
  /** Counted packets older than base_seq (a late packet from before the window). */
  countedBeforeBase: number;
  /** Extra copies of media packets the proxy sent. */
  duplicatesSent: number;
  mediaSeen: number;
  /** Each process's stderr, for a failure message. */
  logs: string;
}

/** One run: relay and viewer processes, the proxy here, then the sharer; returns what each side saw. */
async function run(name: string, down: ImpairSettings, seed: number): Promise<Outcome> {
  const statsFile = join(dir, `${name}.json`);
  const port = await freePort();
  const procs: Record<string, Running> = {};
  const logs = () =>
    Object.entries(procs)
      .map(([role, r]) => `--- ${role} stderr ---\n${r.stderrText().split('\n').slice(-15).join('\n')}`)
      .join('\n');
  const relay = (procs.relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard']));
  const forwarded: Forwarded[] = [];
  const dropped: Media[] = [];
  let order = 0;
  let proxy: ImpairProxy | undefined;
  try {
    await waitFor(() => relay.stderrText().includes('listening'), 8000, 'the relay');
    proxy = await ImpairProxy.start({
      listenPort: 0,
      listenHost: '127.0.0.1',
      target: { host: '127.0.0.1', port },
      up: NO_IMPAIRMENT,
      down,
      seed,
      onForward: (dir: Direction, d: Buffer, sendAtMs: number, copies: number) => {
        const m = dir === 'down' ? media(d) : undefined;
        if (m) forwarded.push({ ...m, sendAtMs, copies, order: order++ });
      },
      onDrop: (dir: Direction, d: Buffer) => {
        const m = dir === 'down' ? media(d) : undefined;
        if (m) dropped.push(m);
      },
    });
    const p = proxy;
    const watch = (procs.watch = udpcast([
      'watch', `127.0.0.1:${p.port}`, '--player', 'none', '--no-dashboard',
      '--stats-json', statsFile, '--duration', String(WATCH_SAFETY_SECONDS),
    ]));
    // Subscribed: the relay has answered through the proxy (its ACK came down).
    await waitFor(() => p.counters.down.received > 0, 8000, 'the relay to answer the viewer through the proxy');
    const share = (procs.share = udpcast([
      'share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--fps', '25',
      '--duration', String(SHARE_SECONDS), '--no-dashboard',
    ]));
    assert.equal((await exited(share, 20_000)).code, 0, logs());
    // The delay line drains (at most delay + jitter + reorder gap), then the viewer stops.
    await waitFor(() => p.pending === 0, 2000, 'the proxy to send what it holds');
    await sleep(SETTLE_MS);
    watch.child.kill('SIGTERM');
    assert.equal((await exited(watch, 5000)).code, 0, logs());
    assert.equal(p.counters.down.cancelled, 0, 'nothing the hooks logged as forwarded was left unsent');
    relay.child.kill('SIGTERM');
    await exited(relay, 5000);
  } finally {
    await proxy?.close();
    for (const r of Object.values(procs)) r.child.kill('SIGTERM');
    for (const r of Object.values(procs)) await exited(r, 5000).catch(() => undefined);
  }

  const lines = readFileSync(statsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const viewer = lines[lines.length - 1];
  assert.equal(viewer.final, true, 'the last --stats-json line is the final one');

  // The viewer's arrival order: send time, and scheduling order among equal times (the proxy's
  // delay line does the same); every copy arrives, back to back.
  const arrivals: Arrival[] = [];
  for (const f of [...forwarded].sort((a, b) => a.sendAtMs - b.sendAtMs || a.order - b.order)) {
    for (let i = 0; i < f.copies; i++) arrivals.push({ seq: f.seq, timestamp: f.timestamp, arrivalMs: f.sendAtMs });
  }
  const judge = judgeRfc3550(arrivals, { clockRate: VIDEO_CLOCK_RATE, minSequential: MIN_SEQUENTIAL });
  assert.ok(judge.valid, `the judge validated the source (${arrivals.length} arrivals)`);

  // 16-bit numbers into the judge's extended space (the stream is far shorter than 2^15 packets).
  const extend = (seq: number) => judge.extendedMax - ((judge.extendedMax - seq + SEQ_MOD) % SEQ_MOD);
  const inWindow = (ext: number) => ext >= judge.baseSeq && ext <= judge.extendedMax;
  const delivered = new Set(forwarded.map((f) => extend(f.seq)));
  const droppedSet = new Set(dropped.map((d) => extend(d.seq)).filter(inWindow));
  const notCounted: number[] = [];
  for (let e = judge.baseSeq; e <= judge.extendedMax; e++) if (!judge.counted.has(e)) notCounted.push(e);
  return {
    lines,
    viewer,
    judge,
    forwarded,
    dropped,
    ssrcs: new Set([...forwarded, ...dropped].map((m) => m.ssrc)),
    droppedInWindow: droppedSet.size,
    repairedInWindow: [...droppedSet].filter((e) => judge.counted.has(e)).length,
    notCounted,
    forwardedTooLate: notCounted.filter((e) => delivered.has(e)).length,
    countedBeforeBase: [...judge.counted].filter((e) => e < judge.baseSeq).length,
    duplicatesSent: forwarded.reduce((n, f) => n + f.copies - 1, 0),
    mediaSeen: forwarded.length + dropped.length,
    logs: logs(),
  };
}

interface JitterPair {
  packets: number;
  viewerMs: number;
  judgeMs: number;
}

/**
 * Every stats line that counted packets, with the judge's estimate after the same packet count. A
 * line with the same count as the one before (the stream had ended) is the same sample, kept once.
 */
function jitterPairs(o: Outcome): JitterPair[] {
  const pairs: JitterPair[] = [];
  for (const l of o.lines) {
    if (l.packetsReceived === 0 || l.packetsReceived === pairs.at(-1)?.packets) continue;
    const at = o.judge.trace[l.packetsReceived - 1];
    assert.ok(at, `a stats line counts ${l.packetsReceived} packets, the judge only ${o.judge.trace.length}`);
    pairs.push({ packets: l.packetsReceived, viewerMs: l.jitterMs, judgeMs: at.jitterMs });
  }
  return pairs;
}

/** Issue 4's jitter bound for one judge value. */
const jitterTolerance = (judgeMs: number) => Math.max(JITTER_TOLERANCE_FRACTION * judgeMs, JITTER_TOLERANCE_MS);
/** How far a line is off, in units of its tolerance: ≤ 1 is within it. */
const offBy = (p: JitterPair) => Math.abs(p.viewerMs - p.judgeMs) / jitterTolerance(p.judgeMs);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const showPairs = (pairs: JitterPair[]) => pairs.map((p) => `${p.viewerMs}/${p.judgeMs.toFixed(2)}`).join(' ');

function report(name: string, o: Outcome): void {
  const v = o.viewer;
  const j = o.judge;
  const pairs = jitterPairs(o);
  const within = pairs.filter((p) => offBy(p) <= 1).length;
  console.log(
    `${name}: media ${o.mediaSeen} (forwarded ${o.forwarded.length}, dropped ${o.dropped.length}, +${o.duplicatesSent} copies); ` +
      `window ${j.baseSeq}..${j.extendedMax}, expected ${j.expected}; ` +
      `lost viewer ${v.rfc3550Lost} vs judge ${j.lost} (dropped ${o.droppedInWindow} - retransmitted in time ${o.repairedInWindow}, ${o.forwardedTooLate} forwarded too late; ` +
      `viewer nacksSent ${v.nacksSent} recoveredByRtx ${v.recoveredByRtx} recoveredByFec ${v.recoveredByFec}); ` +
      `received viewer ${v.packetsReceived} vs judge ${j.received}; ` +
      `jitter: ${within} of ${pairs.length} lines within tolerance, median line off by ${median(pairs.map(offBy)).toFixed(2)} of its tolerance, ` +
      `final viewer ${v.jitterMs} vs judge ${j.jitterMs.toFixed(3)} ms (${(100 * (v.jitterMs / j.jitterMs - 1)).toFixed(1)}%), ` +
      `per line viewer/judge ms ${showPairs(pairs)}; ` +
      `duplicates viewer ${v.duplicates} vs judge ${j.duplicates}; late viewer ${lateAtViewer(v)} ` +
      `(reordered ${v.reordered} + re-sent ${v.recoveredByRtx} + too late ${v.tooLate}) vs judge ${j.late}`,
  );
}

/**
 * What A.1 calls late (behind the highest sequence number, not a duplicate), as the viewer splits
 * it (issue 12): originals that came late by themselves, re-sent copies that filled a gap, and
 * packets that arrived after their gap was given up.
 */
const lateAtViewer = (v: Record<string, any>) => v.reordered + v.recoveredByRtx + v.tooLate;

/**
 * The setup and the judge hold: one sender session, A.3's expected - received equals the window
 * sequence numbers the judge never counted, and each of those was dropped by the proxy at least
 * once (nothing is lost anywhere else on loopback).
 */
function judgeIsConsistent(o: Outcome): void {
  assert.equal(o.ssrcs.size, 1, `one media SSRC throughout, saw ${[...o.ssrcs].map((s) => s.toString(16))}\n${o.logs}`);
  // A restart would mean packets far behind the stream (more than MAX_MISORDER) arrived in
  // sequence, e.g. stale history replayed to the viewer: both sides would then count a new window.
  assert.equal(
    o.judge.restarts,
    0,
    `no A.1 restart: ${o.judge.ignored} arrivals ignored, window now ${o.judge.baseSeq}..${o.judge.extendedMax}\n${o.logs}`,
  );
  assert.equal(
    o.judge.lost,
    o.notCounted.length - o.countedBeforeBase,
    'A.3 expected - received equals the window sequence numbers never counted (less any counted from before the window)',
  );
  const droppedSet = new Set(o.dropped.map((d) => d.seq));
  const notDropped = o.notCounted.filter((e) => !droppedSet.has(e % SEQ_MOD));
  assert.deepEqual(notDropped, [], `every packet missing in the window was dropped by the proxy\n${o.logs}`);
}

/**
 * The assertions: loss within ±2 of dropped minus repaired, jitter within 25% or 0.5 ms.
 *
 * "Repaired" comes from two places. A retransmission (a NACK answered by the relay) is the same RTP
 * packet again, so it crosses the proxy and the proxy's log shows the hole filled: repairedInWindow,
 * counted here independently of the viewer (subtracting the viewer's recoveredByRtx instead would
 * trust the thing under test, and it also counts late originals that arrived after a NACK). FEC
 * rebuilds a packet that never crossed as media, so only the viewer can say how many:
 * recoveredByFec from its stats line.
 */
function assertAccurate(o: Outcome): void {
  const v = o.viewer;
  const j = o.judge;
  // Not vacuous: the proxy really dropped and really delayed.
  assert.ok(o.dropped.length > MIN_DROP_FRACTION * o.mediaSeen, `the proxy dropped ${o.dropped.length} of ${o.mediaSeen} media packets`);
  assert.ok(o.droppedInWindow > 0, 'drops fell inside the counted window');

  const byFec = v.recoveredByFec ?? 0;
  const expectedLost = o.droppedInWindow - o.repairedInWindow - byFec;
  assert.ok(
    Math.abs(v.rfc3550Lost - expectedLost) <= LOSS_TOLERANCE_PACKETS,
    `viewer lost ${v.rfc3550Lost} (RFC 3550); judge: ${o.droppedInWindow} dropped in the window - ${o.repairedInWindow} retransmitted in time - ` +
      `${byFec} rebuilt by FEC = ${expectedLost} (±${LOSS_TOLERANCE_PACKETS})`,
  );
  assert.ok(
    Math.abs(v.packetsReceived - (j.received + byFec)) <= LOSS_TOLERANCE_PACKETS,
    `viewer received ${v.packetsReceived}, judge ${j.received} delivered + ${byFec} rebuilt by FEC`,
  );

  const pairs = jitterPairs(o);
  assert.ok(pairs.length >= MIN_JITTER_LINES, `${pairs.length} stats lines with packets`);
  const judgeMs = mean(pairs.map((p) => p.judgeMs));
  assert.ok(judgeMs > MIN_JUDGE_JITTER_MS, `judge jitter ${judgeMs} ms on average over the lines`);
  const off = median(pairs.map(offBy));
  assert.ok(
    off <= 1,
    `the median stats line's jitter is off by ${off.toFixed(2)} times the tolerance (25% or 0.5 ms); ` +
      `per line viewer/judge ms: ${showPairs(pairs)}`,
  );
}

describe('watch statistics against an independent RFC 3550 judge', { skip }, () => {
  test('3% loss, 5 ms delay + 0-20 ms jitter downstream: loss within ±2, jitter within 25%', { timeout: CASE_TIMEOUT_MS }, async () => {
    // Jitter up to 20 ms (not 8) so the judge's estimate is a few ms and the 25% bound, not the
    // 0.5 ms floor, decides: ~9 packets a frame leave the proxy nearly back to back.
    const down: ImpairSettings = { ...NO_IMPAIRMENT, loss: 0.03, delayMs: 5, jitterMs: 20 };
    const o = await run('loss-jitter', down, 0x5eed);
    report('loss + jitter', o);
    judgeIsConsistent(o);
    assertAccurate(o);
  });

  test('plus 3% reordering and 3% duplicates: duplicates all seen, loss still within ±2', { timeout: CASE_TIMEOUT_MS }, async () => {
    const down: ImpairSettings = { ...NO_IMPAIRMENT, loss: 0.03, delayMs: 5, jitterMs: 8, reorder: 0.03, duplicate: 0.03 };
    const o = await run('reorder-duplicate', down, 0xd0be);
    report('reorder + duplicate', o);
    judgeIsConsistent(o);
    assert.ok(o.duplicatesSent > 0, 'the proxy sent duplicates');
    assert.ok(o.judge.late > 0, 'packets arrived late, after higher sequence numbers');
    // Every extra copy the proxy sent reaches the viewer right after its original and is counted
    // as a duplicate, except copies of packets before base_seq (probation), hence "minus 2". The
    // viewer counts more when repair exists: a retransmission of a packet that was late, not lost,
    // is a duplicate too; the judge sees those retransmissions as well and must agree exactly.
    assert.ok(
      o.viewer.duplicates >= o.duplicatesSent - COUNT_TOLERANCE,
      `viewer counted ${o.viewer.duplicates} duplicates, the proxy sent ${o.duplicatesSent} extra copies`,
    );
    assert.ok(
      Math.abs(o.viewer.duplicates - o.judge.duplicates) <= COUNT_TOLERANCE,
      `viewer ${o.viewer.duplicates} duplicates, judge ${o.judge.duplicates}`,
    );
    assert.ok(
      Math.abs(lateAtViewer(o.viewer) - o.judge.late) <= COUNT_TOLERANCE,
      `viewer ${lateAtViewer(o.viewer)} late (${o.viewer.reordered} reordered + ${o.viewer.recoveredByRtx} re-sent + ` +
        `${o.viewer.tooLate} too late), judge ${o.judge.late} late`,
    );
    assertAccurate(o);
  });
});

// ---- The judge checked by hand, so a bug in it cannot pass for agreement --------------------------
describe('the judge itself, on a schedule worked out by hand', () => {
  // 90 kHz clock (1 ms = 90 units); the sender sends every 20 ms (1800 units). Packet k has
  // seq (65534 + k) mod 2^16 and timestamp (2^32 - 3600 + 1800 k) mod 2^32, so both wrap at k = 2.
  const ts = (k: number) => (2 ** 32 - 3600 + 1800 * k) % 2 ** 32;
  const seq = (k: number) => (65534 + k) % SEQ_MOD;
  const at = (k: number, arrivalMs: number): Arrival => ({ seq: seq(k), timestamp: ts(k), arrivalMs });
  //   k  seq    arrival  A.1                              D = (Rj-Ri) - (Sj-Si), units    J
  //   0  65534  1000     probation, not counted
  //   1  65535  1020     valid: base_seq 65535            (first counted: reference only) 0
  //   2  0      1045     wrapped: cycles 65536            25·90 - 1800 = 450              450/16 = 28.125
  //   4  2      1080     gap (k=3 not yet here)           35·90 - 3600 = -450             28.125 + (450-28.125)/16 = 54.4921875
  //   3  1      1085     late                             5·90 + 1800 = 2250              54.4921875 + (2250-54.4921875)/16 = 191.71142578125
  //   4  2      1086     duplicate: not counted, no D
  //   5  3      -        lost
  //   6  4      1120     in order                         35·90 - 5400 = -2250            191.71142578125 + (2250-191.71142578125)/16
  const schedule = [at(0, 1000), at(1, 1020), at(2, 1045), at(4, 1080), at(3, 1085), at(4, 1086), at(6, 1120)];
  const jitter = 191.71142578125 + (2250 - 191.71142578125) / 16;

  test('A.1 window, A.3 loss, duplicates and late packets across the 16-bit wrap', () => {
    const r = judgeRfc3550(schedule, { clockRate: VIDEO_CLOCK_RATE });
    assert.equal(r.valid, true);
    assert.equal(r.firstCounted, 1, 'the second arrival ends probation');
    assert.equal(r.baseSeq, 65535);
    assert.equal(r.extendedMax, 65536 + 4);
    assert.equal(r.expected, 6, 'k = 1..6');
    assert.equal(r.received, 5);
    assert.equal(r.lost, 1, 'k = 5');
    assert.equal(r.duplicates, 1);
    assert.equal(r.lostCountingDuplicates, 0, '§6.4.1 literally: the duplicate hides the loss');
    assert.equal(r.late, 1);
    assert.deepEqual([...r.counted].sort((a, b) => a - b), [65535, 65536, 65537, 65538, 65540]);
  });

  test('A.8 jitter across the 32-bit timestamp wrap, in units and ms', () => {
    const r = judgeRfc3550(schedule, { clockRate: VIDEO_CLOCK_RATE });
    assert.equal(r.jitter, jitter);
    assert.equal(r.jitterMs, jitter / 90);
    assert.deepEqual(
      r.trace.map((t) => t.jitterMs * 90),
      [0, 28.125, 54.4921875, 191.71142578125, jitter],
      'one estimate per counted packet, none for the duplicate',
    );
  });

  test('probation starts again when the first two packets are not in sequence', () => {
    const r = judgeRfc3550(
      [
        { seq: 10, timestamp: 0, arrivalMs: 0 },
        { seq: 12, timestamp: 3600, arrivalMs: 40 },
        { seq: 13, timestamp: 5400, arrivalMs: 60 },
        { seq: 14, timestamp: 7200, arrivalMs: 80 },
      ],
      { clockRate: VIDEO_CLOCK_RATE },
    );
    assert.deepEqual([r.firstCounted, r.baseSeq, r.expected, r.received, r.lost, r.ignored], [2, 13, 2, 2, 0, 2]);
  });

  test('a jump of MAX_DROPOUT or more is ignored, unless its successor follows: then a restart', () => {
    const p = (s: number, t: number) => ({ seq: s, timestamp: 1800 * t, arrivalMs: 20 * t });
    const r = judgeRfc3550([p(100, 0), p(101, 1), p(102, 2), p(9000, 3), p(103, 4), p(20000, 5), p(20001, 6), p(20002, 7)], {
      clockRate: VIDEO_CLOCK_RATE,
    });
    // 9000 is ignored (its successor does not come); 20000 too, but 20001 follows it: restart there.
    assert.deepEqual([r.restarts, r.baseSeq, r.expected, r.received, r.ignored], [1, 20001, 2, 2, 3]);
  });
});

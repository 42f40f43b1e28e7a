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
 * about 16 packets (two frames here), so one line is one short sample; a scheduling stall of ~10 ms
 * in the viewer or in this process near that moment (the machine runs four processes and FFmpeg)
 * moves it by more than 25% although the viewer computes correctly. Each line is matched to the
 * judge's estimate after the same number of counted packets (the same packets, since both count the
 * same ones in the same order), and the run-long mean of the viewer's values must be within 25%
 * (or 0.5 ms) of the judge's. A wrong clock rate, gain, unit or packet set shifts every line and
 * fails that; a single noisy line does not.
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

// ---- The RTP fixed header, RFC 3550 §5.1 (read here by hand, not through src/transport/rtp.ts) ----
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
  /** Of those, the ones a retransmission (same SSRC and sequence number) later got through. */
  repairedInWindow: number;
  /** Distinct window sequence numbers that never got through at all. */
  neverDelivered: number;
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
  let neverDelivered = 0;
  for (let e = judge.baseSeq; e <= judge.extendedMax; e++) if (!delivered.has(e)) neverDelivered++;
  return {
    lines,
    viewer,
    judge,
    forwarded,
    dropped,
    ssrcs: new Set([...forwarded, ...dropped].map((m) => m.ssrc)),
    droppedInWindow: droppedSet.size,
    repairedInWindow: [...droppedSet].filter((e) => delivered.has(e)).length,
    neverDelivered,
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

/** Every stats line that counted packets, with the judge's estimate after the same packet count. */
function jitterPairs(o: Outcome): JitterPair[] {
  return o.lines
    .filter((l) => l.packetsReceived > 0)
    .map((l) => {
      const at = o.judge.trace[l.packetsReceived - 1];
      assert.ok(at, `a stats line counts ${l.packetsReceived} packets, the judge only ${o.judge.trace.length}`);
      return { packets: l.packetsReceived, viewerMs: l.jitterMs, judgeMs: at.jitterMs };
    });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function report(name: string, o: Outcome): void {
  const v = o.viewer;
  const j = o.judge;
  const pairs = jitterPairs(o);
  const mv = mean(pairs.map((p) => p.viewerMs));
  const mj = mean(pairs.map((p) => p.judgeMs));
  console.log(
    `${name}: media ${o.mediaSeen} (forwarded ${o.forwarded.length}, dropped ${o.dropped.length}, +${o.duplicatesSent} copies); ` +
      `window ${j.baseSeq}..${j.extendedMax}, expected ${j.expected}; ` +
      `lost viewer ${v.packetsLost} vs judge ${j.lost} (dropped ${o.droppedInWindow} - retransmitted through ${o.repairedInWindow}; ` +
      `viewer nacksSent ${v.nacksSent} recoveredByRtx ${v.recoveredByRtx} recoveredByFec ${v.recoveredByFec}); ` +
      `received viewer ${v.packetsReceived} vs judge ${j.received}; ` +
      `jitter mean of ${pairs.length} lines viewer ${mv.toFixed(3)} vs judge ${mj.toFixed(3)} ms (${(100 * (mv / mj - 1)).toFixed(1)}%), ` +
      `final viewer ${v.jitterMs} vs judge ${j.jitterMs.toFixed(3)} ms (${(100 * (v.jitterMs / j.jitterMs - 1)).toFixed(1)}%), ` +
      `per line ${pairs.map((p) => `${p.viewerMs}/${p.judgeMs.toFixed(2)}`).join(' ')}; ` +
      `duplicates viewer ${v.duplicates} vs judge ${j.duplicates}; late viewer ${v.reordered} vs judge ${j.late}`,
  );
}

/**
 * The setup and the judge hold: one sender session, A.3's expected - received equals the window
 * sequence numbers that never got through, and each of those was dropped by the proxy (nothing is
 * lost anywhere else on loopback).
 */
function judgeIsConsistent(o: Outcome): void {
  assert.equal(o.ssrcs.size, 1, `one media SSRC throughout, saw ${[...o.ssrcs].map((s) => s.toString(16))}\n${o.logs}`);
  assert.equal(o.judge.restarts, 0, `no A.1 restart in the judge\n${o.logs}`);
  assert.equal(
    o.judge.lost,
    o.neverDelivered - o.countedBeforeBase,
    'A.3 expected - received equals the window sequence numbers the proxy never delivered',
  );
  assert.equal(o.neverDelivered, o.droppedInWindow - o.repairedInWindow, `every packet that never arrived was dropped by the proxy\n${o.logs}`);
}

/**
 * The issue's assertions: loss within ±2 of dropped minus repaired, jitter within 25% or 0.5 ms.
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
    Math.abs(v.packetsLost - expectedLost) <= LOSS_TOLERANCE_PACKETS,
    `viewer lost ${v.packetsLost}; judge: ${o.droppedInWindow} dropped in the window - ${o.repairedInWindow} retransmitted through - ` +
      `${byFec} rebuilt by FEC = ${expectedLost} (±${LOSS_TOLERANCE_PACKETS})`,
  );
  assert.ok(
    Math.abs(v.packetsReceived - (j.received + byFec)) <= LOSS_TOLERANCE_PACKETS,
    `viewer received ${v.packetsReceived}, judge ${j.received} delivered + ${byFec} rebuilt by FEC`,
  );

  const pairs = jitterPairs(o);
  assert.ok(pairs.length >= MIN_JITTER_LINES, `${pairs.length} stats lines with packets`);
  const viewerMs = mean(pairs.map((p) => p.viewerMs));
  const judgeMs = mean(pairs.map((p) => p.judgeMs));
  assert.ok(judgeMs > MIN_JUDGE_JITTER_MS, `judge jitter ${judgeMs} ms on average`);
  const tolerance = Math.max(JITTER_TOLERANCE_FRACTION * judgeMs, JITTER_TOLERANCE_MS);
  assert.ok(
    Math.abs(viewerMs - judgeMs) <= tolerance,
    `viewer jitter ${viewerMs.toFixed(3)} ms on average over ${pairs.length} lines, judge ${judgeMs.toFixed(3)} ms (± ${tolerance.toFixed(3)} ms); ` +
      `per line viewer/judge: ${pairs.map((p) => `${p.viewerMs}/${p.judgeMs.toFixed(2)}`).join(' ')}`,
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
      Math.abs(o.viewer.reordered - o.judge.late) <= COUNT_TOLERANCE,
      `viewer ${o.viewer.reordered} reordered, judge ${o.judge.late} late`,
    );
    assertAccurate(o);
  });
});

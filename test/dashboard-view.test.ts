/**
 * The dashboards as pure text: labels, number formatting, "-" for unknown, sparkline scaling,
 * the 60 s history, the `r` baseline, and narrow terminals that cut lines instead of wrapping them.
 * No terminal is involved: blessed only draws these lines (test/dashboard-tmux.test.ts covers that).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { RelaySnapshot, ShareSnapshot, WatchSnapshot } from '../src/dashboard/snapshots.ts';
import { History, HISTORY_SAMPLES, Ring } from '../src/dashboard/history.ts';
import {
  applyBaseline,
  fit,
  fmtBytes,
  fmtDuration,
  fmtFps,
  fmtInt,
  fmtKbps,
  fmtMs,
  fmtPct,
  helpLines,
  KEYS_FOOTER,
  oneLine,
  pairs,
  render,
  SPARK_ASCII,
  SPARK_BLOCKS,
  sparkline,
  table,
  takeBaseline,
  WATCH_COUNTERS,
} from '../src/dashboard/view.ts';
import { localeIsUtf8, pickTerminal } from '../src/dashboard/screen.ts';

function watchSnap(over: Partial<WatchSnapshot> = {}): WatchSnapshot {
  return {
    role: 'watch',
    stream: 'main',
    relay: '127.0.0.1:5004',
    state: 'live',
    codec: 'h264',
    width: 1280,
    height: 720,
    packetsReceived: 9990,
    packetsExpected: 10_000,
    lostOnWire: 30,
    lostOnWirePercent: 0.3,
    unrepaired: 4,
    repairPending: 1,
    tooLate: 2,
    rfc3550Lost: 10,
    jitterMs: 1.234,
    bitrateKbps: 2500,
    fps: 30,
    framesComplete: 1234,
    framesDropped: 2,
    framesSkipped: 3,
    latencyMs: 45.6,
    duplicates: 4,
    reordered: 5,
    malformed: 6,
    keyframeRequests: 7,
    nacksSent: 8,
    recoveredByRtx: 9,
    recoveredByFec: 11,
    framesGivenUp: 12,
    rttMs: 13.4,
    latencyBudgetMs: 80,
    firstFrameMs: 40,
    publisherRestarts: 0,
    layerMoves: 0,
    audioPackets: 0,
    audioLost: 0,
    audioLate: 0,
    audioRecovered: 0,
    audioConcealed: 0,
    audioSilence: 0,
    audioJitterMs: null,
    audioSyncMs: null,
    undecryptable: 0,
    player: null,
    playerRestarts: 0,
    framesHeldBack: 0,
    playerSoundPlayed: 0,
    playerSoundNotPlayed: 0,
    playerSoundDrains: 0,
    framesStale: 0,
    playerDropped: 0,
    sinkErrors: 0,
    ...over,
  };
}

function shareSnap(over: Partial<ShareSnapshot> = {}): ShareSnapshot {
  return {
    role: 'share',
    stream: 'main',
    codec: 'h264',
    source: 'test',
    relay: 'embedded, 0.0.0.0:5004',
    relayState: 'ok',
    relaySilentS: null,
    relayOutages: 0,
    fps: 29.9,
    bitrateKbps: 2480,
    framesEncoded: 300,
    framesSent: 299,
    keyframesSent: 5,
    audioPacketsSent: 0,
    audioSilenceNotSent: 0,
    packetsSent: 3100,
    bytesSent: 870_000,
    viewers: 2,
    worstLossPercent: 1.5,
    worstRttMs: 20,
    viewerReports: [
      { ssrc: '0000abcd', lossPercent: 1.5, jitterMs: 2.25, rttMs: 20 },
      { ssrc: '1234beef', lossPercent: 0, jitterMs: 0.5, rttMs: null },
    ],
    keyframeRequests: 1,
    encoderRestarts: 0,
    sendErrors: 0,
    fecPacketsSent: 0,
    resent: 0,
    keyframeRestarts: 0,
    estimateKbps: 1180,
    targetKbps: 1062,
    queueDelayMs: 12,
    pathLossPercent: 0.5,
    ccState: 'room',
    retargets: 2,
    probes: 3,
    pacerDropped: 0,
    layers: 3,
    layersSent: 2,
    framesHeld: 0,
    uplinkPaused: null,
    ...over,
  };
}

function relaySnap(over: Partial<RelaySnapshot> = {}): RelaySnapshot {
  return {
    role: 'relay',
    address: '0.0.0.0:5004',
    streams: 1,
    awaitedStreams: 1,
    viewers: 3,
    bitrateInKbps: 5000,
    bitrateOutKbps: 12500,
    datagramsIn: 20_000,
    packetsOut: 50_000,
    bytesIn: 1,
    bytesOut: 2,
    dropped: 17,
    malformed: 7,
    unknownSource: 10,
    oversize: 0,
    hijackAttempts: 0,
    overLimit: 0,
    sendErrors: 3,
    rtxMisses: 0,
    uplinkNacked: 0,
    uplinkRepaired: 0,
    uplinkCopies: 0,
    cacheJoins: 1,
    challenges: 2,
    rateLimited: 0,
    keyframeRequestsHeld: 0,
    circuitBreaks: 0,
    feedbackReports: 400,
    probePackets: 30,
    layerMoves: 1,
    authFailures: 0,
    retransmissions: 4,
    io: 'native',
    handedToDgram: 0,
    perStream: [
      { name: 'main', publisher: '10.0.0.2:40000', codec: 'h264', size: '1280x720', sound: true, bitrateInKbps: 2500, packetsIn: 10_000, packetsOut: 20_000, viewers: 2, dropped: 3 },
    ],
    perViewer: [
      { stream: 'main', address: '10.0.0.3:50000', uptimeS: 185, lossPercent: 0.39, jitterMs: 1.5, rttMs: 12, packetsOut: 10_000, sendErrors: 2, retransmissions: 40, layer: 0, estimateKbps: null, layerWhy: null },
      { stream: 'main', address: '10.0.0.4:50001', uptimeS: 42, lossPercent: null, jitterMs: null, rttMs: null, packetsOut: 10_000, sendErrors: 1, retransmissions: 0, layer: 1, estimateKbps: 1180, layerWhy: 'down: a queue of 52 ms, the path takes about 1180 kbit/s' },
      { stream: 'slides', address: '10.0.0.5:50002', uptimeS: 3720, lossPercent: 0, jitterMs: 0, rttMs: 3, packetsOut: 0, sendErrors: 0, retransmissions: 0, layer: null, estimateKbps: null, layerWhy: null },
    ],
    ...over,
  };
}

/** The value printed after `label` in a label/value layout. */
function valueOf(lines: string[], label: string): string {
  for (const l of lines) {
    const i = l.indexOf(label + ' ');
    if (i >= 0) return l.slice(i + label.length).trimStart().split(/\s{2,}/)[0];
  }
  throw new Error(`label ${JSON.stringify(label)} not found in:\n${lines.join('\n')}`);
}

describe('number formatting', () => {
  test('counts are grouped by thousands; unknown is "-"', () => {
    assert.equal(fmtInt(0), '0');
    assert.equal(fmtInt(999), '999');
    assert.equal(fmtInt(12345), '12,345');
    assert.equal(fmtInt(1234567), '1,234,567');
    assert.equal(fmtInt(null), '-');
    assert.equal(fmtInt(undefined), '-');
    assert.equal(fmtInt(NaN), '-');
  });
  test('bitrates switch from kbit/s to Mbit/s at 1000', () => {
    assert.equal(fmtKbps(9.5), '9.5 kbit/s');
    assert.equal(fmtKbps(850), '850 kbit/s');
    assert.equal(fmtKbps(999.4), '999 kbit/s');
    assert.equal(fmtKbps(1000), '1.00 Mbit/s');
    assert.equal(fmtKbps(2500), '2.50 Mbit/s');
    assert.equal(fmtKbps(null), '-');
  });
  test('milliseconds keep the precision that matters at their size', () => {
    assert.equal(fmtMs(1.234), '1.23 ms');
    assert.equal(fmtMs(12.34), '12.3 ms');
    assert.equal(fmtMs(123.4), '123 ms');
    assert.equal(fmtMs(0), '0.00 ms');
    assert.equal(fmtMs(null), '-');
  });
  test('percentages, fps, uptime and bytes', () => {
    assert.equal(fmtPct(0.1), '0.10%');
    assert.equal(fmtPct(12.5), '12.50%');
    assert.equal(fmtPct(null), '-');
    assert.equal(fmtFps(29.94), '29.9');
    assert.equal(fmtDuration(42), '42s');
    assert.equal(fmtDuration(185), '3m05s');
    assert.equal(fmtDuration(3720), '1h02m');
    assert.equal(fmtDuration(null), '-');
    assert.equal(fmtBytes(512), '512 B');
    assert.equal(fmtBytes(870_000), '870 kB');
    assert.equal(fmtBytes(1_500_000), '1.50 MB');
  });
});

describe('sparkline', () => {
  test('0..7 on a scale of 7 climbs one block per step', () => {
    assert.equal(sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8), SPARK_BLOCKS);
  });
  test('scaled to the largest value: half of it is the middle block', () => {
    assert.equal(sparkline([5, 10], 2), '▅█');
    assert.equal(sparkline([50, 100], 2), '▅█', 'only proportions matter');
  });
  test('zero is the lowest block; any positive value shows above it', () => {
    assert.equal(sparkline([0, 0, 0], 3), '▁▁▁');
    assert.equal(sparkline([1000, 1, 0], 3), '█▂▁');
  });
  test('a floor keeps small values small (0.1% loss on a 1% scale)', () => {
    assert.equal(sparkline([0.1], 1), '█');
    assert.equal(sparkline([0.1], 1, { floor: 1 }), '▂');
    assert.equal(sparkline([2], 1, { floor: 1 }), '█', 'values above the floor scale as usual');
  });
  test('no data is a blank; short series are right-aligned (newest last)', () => {
    assert.equal(sparkline([null, 1], 2), ' █');
    assert.equal(sparkline([1], 4), '   █');
    assert.equal(sparkline([], 3), '   ');
  });
  test('a long series is bucketed by maximum, so a one-second spike survives narrowing', () => {
    const values = new Array<number>(120).fill(1);
    values[77] = 50;
    const s = sparkline(values, 30);
    assert.equal([...s].length, 30);
    assert.equal([...s].filter((c) => c === '█').length, 1);
    assert.equal(s.indexOf('█'), Math.floor((77 * 30) / 120));
  });
  test('ASCII fallback uses its own eight levels', () => {
    assert.equal(sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8, { ascii: true }), SPARK_ASCII);
  });
  test('property: always exactly `width` columns of known glyphs', () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.double({ min: -1e6, max: 1e9, noNaN: true }), { nil: null }), { maxLength: 200 }), fc.integer({ min: 0, max: 80 }), fc.boolean(), (vals, width, ascii) => {
        const s = [...sparkline(vals, width, { ascii })];
        assert.equal(s.length, width);
        const allowed = new Set([' ', ...(ascii ? SPARK_ASCII : SPARK_BLOCKS)]);
        for (const c of s) assert.ok(allowed.has(c), `unexpected ${JSON.stringify(c)}`);
      }),
    );
  });
});

describe('layout', () => {
  test('fit cuts with an ellipsis and never exceeds the width', () => {
    assert.equal(fit('abcdef', 10), 'abcdef');
    assert.equal(fit('abcdef', 6), 'abcdef');
    assert.equal(fit('abcdef', 4), 'abc…');
    assert.equal(fit('abcdef', 4, true), 'abc~');
    assert.equal(fit('abcdef', 0), '');
  });
  test('pairs use more columns when the terminal is wide and one when narrow', () => {
    const fields = [
      ['A', '1'],
      ['B', '2'],
      ['C', '3'],
      ['D', '4'],
    ] as const;
    assert.equal(pairs(fields, 200).length, 2, 'three columns at most: ceil(4 / 3) rows');
    assert.equal(pairs(fields, 30).length, 2, 'two columns of 13');
    assert.deepEqual(pairs(fields, 14), ['A           1', 'B           2', 'C           3', 'D           4']);
  });
  test('tables align numbers right and cut rows to the width', () => {
    const t = table([{ header: 'NAME' }, { header: 'N', align: 'right' }], [['a', '1'], ['bbbbbb', '1,000']], 80);
    assert.deepEqual(t, ['NAME        N', 'a           1', 'bbbbbb  1,000']);
    assert.deepEqual(table([{ header: 'NAME' }, { header: 'N', align: 'right' }], [['bbbbbb', '1,000']], 8), ['NAME   …', 'bbbbbb …']);
  });
});

describe('watch dashboard', () => {
  const h = new History();
  h.record(watchSnap());
  const lines = render(watchSnap(), h, { width: 116 });

  test('every figure the issue asks for is labelled', () => {
    for (const label of ['Stream', 'Resolution', 'Codec', 'FPS', 'Bitrate', 'Packets', 'Lost (wire)', 'Unrepaired', 'Lost (RFC)', 'Jitter', 'Latency', 'Frames', 'Dropped', 'State', 'NACKs sent', 'By RTX', 'By FEC', 'Given up', 'Key req.', 'RTT']) {
      valueOf(lines, label);
    }
    assert.ok(lines.some((l) => l.trim() === 'Last 60 s'));
    assert.equal(lines.at(-1), KEYS_FOOTER);
  });
  test('values are formatted from the snapshot', () => {
    assert.equal(valueOf(lines, 'Stream'), 'main');
    assert.equal(valueOf(lines, 'State'), 'live');
    assert.equal(valueOf(lines, 'Resolution'), '1280x720');
    assert.equal(valueOf(lines, 'Codec'), 'h264');
    assert.equal(valueOf(lines, 'FPS'), '30.0');
    assert.equal(valueOf(lines, 'Bitrate'), '2.50 Mbit/s');
    assert.equal(valueOf(lines, 'Packets'), '9,990');
    assert.equal(valueOf(lines, 'Lost (wire)'), '30 (0.30%)');
    assert.equal(valueOf(lines, 'Unrepaired'), '4 (+1 pending)');
    assert.equal(valueOf(lines, 'Lost (RFC)'), '10');
    assert.equal(valueOf(lines, 'Dup/reorder'), '4 / 5');
    assert.equal(valueOf(lines, 'Jitter'), '1.23 ms');
    assert.equal(valueOf(lines, 'Latency'), '45.6 ms');
    assert.equal(valueOf(lines, 'Frames'), '1,234');
    assert.equal(valueOf(lines, 'Dropped'), '2');
    assert.equal(valueOf(lines, 'NACKs sent'), '8');
    assert.equal(valueOf(lines, 'By RTX'), '9');
    assert.equal(valueOf(lines, 'By FEC'), '11');
    assert.equal(valueOf(lines, 'Given up'), '12');
    assert.equal(valueOf(lines, 'Key req.'), '7');
    assert.equal(valueOf(lines, 'RTT'), '13.4 ms');
    assert.ok(lines[0].startsWith('udpcast watch  main @ 127.0.0.1:5004') && lines[0].endsWith('LIVE'));
  });
  test('what is not known yet is "-"', () => {
    const l = render(watchSnap({ state: 'connecting', codec: null, width: null, height: null, latencyMs: null, rttMs: null }), new History(), { width: 116 });
    assert.equal(valueOf(l, 'Codec'), '-');
    assert.equal(valueOf(l, 'Resolution'), '-');
    assert.equal(valueOf(l, 'Latency'), '-');
    assert.equal(valueOf(l, 'RTT'), '-');
    assert.ok(l[0].endsWith('CONNECTING'));
  });
  test('sparklines show the last minute of bitrate, loss and jitter', () => {
    const hist = new History();
    let expected = 0;
    let lost = 0;
    for (let i = 0; i < 90; i++) {
      // One bad second, 30 s ago: 50 of 150 packets lost.
      const bad = i === 60;
      expected += 150;
      lost += bad ? 50 : 0;
      hist.record(watchSnap({ packetsExpected: expected, lostOnWire: lost, bitrateKbps: 2000, jitterMs: bad ? 8 : 1 }));
    }
    // The charts are under 'Last 60 s' (Bitrate and Jitter are field labels above them too).
    const all = render(watchSnap(), hist, { width: 116 });
    const l = all.slice(all.indexOf('Last 60 s'));
    const lossLine = l.find((x) => x.startsWith('Loss '))!;
    const chart = lossLine.slice(12, 12 + 60);
    assert.equal([...chart].filter((c) => c === '█').length, 1, lossLine);
    assert.equal(chart.indexOf('█'), 60 - 30, 'the bad second sits 30 columns from the newest');
    assert.match(lossLine, /now 0\.00%\s+max 33\.33%/);
    assert.match(l.find((x) => x.startsWith('Jitter '))!, /now 1\.00 ms\s+max 8\.00 ms/);
  });
  test('demo side panel and log lines appear; the keys stay on the last line', () => {
    const l = render(watchSnap(), h, { width: 100, height: 40, companions: [oneLine(shareSnap())], log: ['first', 'second'] });
    assert.equal(l.length, 40);
    assert.equal(l.at(-1), KEYS_FOOTER);
    assert.ok(l.includes('Also in this process'));
    assert.ok(l.some((x) => x.startsWith('share main: 29.9 fps 2.48 Mbit/s, 300 frames encoded, 2 viewer(s), worst loss 1.50%')));
    const at = l.indexOf('Log');
    assert.deepEqual(l.slice(at + 1, at + 3), ['first', 'second']);
  });
  test('a short screen keeps the newest log lines and the footer', () => {
    const log = Array.from({ length: 50 }, (_, i) => `line ${i}`);
    const l = render(watchSnap(), h, { width: 116, height: 26, log });
    assert.equal(l.length, 26);
    assert.equal(l.at(-1), KEYS_FOOTER);
    assert.equal(l.at(-3), 'line 49');
    assert.ok(!l.includes('line 0'));
  });
  test('help names every key', () => {
    const text = helpLines().join('\n');
    assert.match(text, /^q, Ctrl-C\s+quit/m);
    assert.match(text, /^r\s+reset the counters/m);
    assert.match(text, /^\?\s+show or hide this help/m);
  });
});

describe('reset (r)', () => {
  test('counters count from the baseline; rates and gauges do not', () => {
    const before = watchSnap();
    const after = watchSnap({
      packetsReceived: 10_990, packetsExpected: 11_010, lostOnWire: 40, unrepaired: 6, framesComplete: 1300, fps: 25, jitterMs: 3, bitrateKbps: 1800, rttMs: 20,
    });
    const shown = applyBaseline(after, takeBaseline(before));
    assert.equal(shown.packetsReceived, 1000);
    assert.equal(shown.lostOnWire, 10);
    assert.equal(shown.unrepaired, 2);
    assert.equal(shown.framesComplete, 66);
    assert.equal(shown.nacksSent, 0);
    assert.equal(shown.repairPending, 1, 'a gauge, not rebased');
    assert.equal(shown.lostOnWirePercent, Math.round((10_000 * 10) / 1010) / 100, 'loss % over the window since the reset');
    assert.equal(shown.fps, 25);
    assert.equal(shown.jitterMs, 3);
    assert.equal(shown.bitrateKbps, 1800);
    assert.equal(shown.rttMs, 20);
    for (const k of WATCH_COUNTERS) assert.ok(shown[k] >= 0, k);
    assert.equal(after.packetsReceived, 10_990, 'the snapshot itself (and --stats-json) is untouched');
  });
  test('the dashboard shows the rebased numbers and says so', () => {
    const l = render(watchSnap({ framesComplete: 1300 }), new History(), { width: 116, baseline: takeBaseline(watchSnap()) });
    assert.equal(valueOf(l, 'Frames'), '66');
    assert.equal(valueOf(l, 'Lost (wire)'), '0 (0.00%)');
    assert.match(l.at(-1)!, /counters since reset/);
  });
  test('a counter that restarted below its baseline is shown as it is', () => {
    const shown = applyBaseline(shareSnap({ framesEncoded: 5 }), takeBaseline(shareSnap()));
    assert.equal(shown.framesEncoded, 5);
  });
  test('relay rows are rebased by stream name and viewer address', () => {
    const base = takeBaseline(relaySnap());
    const now = relaySnap({ datagramsIn: 20_500 });
    now.perStream = now.perStream.map((r) => ({ ...r, packetsIn: r.packetsIn + 100 }));
    now.perViewer = [...now.perViewer, { stream: 'main', address: '10.0.0.9:1', uptimeS: 1, lossPercent: null, jitterMs: null, rttMs: null, packetsOut: 7, sendErrors: 0, retransmissions: 0, layer: null, estimateKbps: null, layerWhy: null }];
    const shown = applyBaseline(now, base);
    assert.equal(shown.datagramsIn, 500);
    assert.deepEqual(shown.perStream.map((r) => r.packetsIn), [100]);
    assert.deepEqual(shown.perViewer.map((r) => r.packetsOut), [0, 0, 0, 7], 'a viewer that joined later counts from its start');
  });
  test('a baseline of another role is ignored', () => {
    const s = watchSnap();
    assert.equal(applyBaseline(s, takeBaseline(shareSnap())), s);
  });
});

describe('share dashboard', () => {
  const l = render(shareSnap(), new History(), { width: 116 });
  test('a relay that stopped answering is in the title, its row and the one-line form', () => {
    const down = shareSnap({ relayState: 'not answering', relaySilentS: 7 });
    const d = render(down, new History(), { width: 116 });
    assert.match(d[0], /RELAY NOT ANSWERING$/);
    assert.match(valueOf(d, 'Relay') ?? '', /NOT ANSWERING \(7 s\)/);
    assert.match(oneLine(down), /relay .* not answering for 7 s, retrying/);
    assert.doesNotMatch(l[0], /NOT ANSWERING/);
  });
  test('encoder, viewers and their worst figures', () => {
    assert.equal(valueOf(l, 'FPS'), '29.9');
    assert.equal(valueOf(l, 'Bitrate'), '2.48 Mbit/s');
    assert.equal(valueOf(l, 'Encoded'), '300');
    assert.equal(valueOf(l, 'Viewers'), '2');
    assert.equal(valueOf(l, 'Worst loss'), '1.50%');
    assert.equal(valueOf(l, 'Worst RTT'), '20.0 ms');
    assert.equal(valueOf(l, 'Sent'), '870 kB');
  });
  test('one row per viewer report', () => {
    const at = l.indexOf('Viewer reports');
    assert.match(l[at + 1], /^VIEWER SSRC\s+LOSS\s+JITTER\s+RTT$/);
    assert.match(l[at + 2], /^0000abcd\s+1\.50%\s+2\.25 ms\s+20\.0 ms$/);
    assert.match(l[at + 3], /^1234beef\s+0\.00%\s+0\.50 ms\s+-$/);
  });
  test('no viewers yet: "-" and a note instead of an empty table', () => {
    const e = render(shareSnap({ viewers: 0, worstLossPercent: null, worstRttMs: null, viewerReports: [] }), new History(), { width: 116 });
    assert.equal(valueOf(e, 'Worst loss'), '-');
    assert.equal(valueOf(e, 'Worst RTT'), '-');
    assert.ok(e.includes('(no receiver reports yet)'));
  });
});

describe('relay dashboard', () => {
  const l = render(relaySnap(), new History(), { width: 116 });
  test('totals at the top, then a row per stream and per viewer', () => {
    const streamsAt = l.indexOf('Streams');
    const viewersAt = l.indexOf('Viewers');
    assert.ok(streamsAt > 0 && viewersAt > streamsAt);
    assert.ok(l.slice(0, streamsAt).some((x) => /Bitrate in\s+5\.00 Mbit\/s/.test(x)));
    assert.equal(valueOf(l.slice(0, streamsAt), 'Dropped'), '17');
    assert.match(l[0], /1 stream, 3 viewers$/);
    assert.equal(valueOf(l.slice(0, streamsAt), 'Streams'), '1 (+1 awaited)', 'a name only a viewer asked for is no stream');
    assert.match(l[streamsAt + 1], /^STREAM\s+PUBLISHER\s+BITRATE IN\s+PKTS IN\s+PKTS OUT\s+VIEWERS\s+DROPS$/);
    assert.match(l[streamsAt + 2], /^main\s+10\.0\.0\.2:40000\s+2\.50 Mbit\/s\s+10,000\s+20,000\s+2\s+3$/);
    assert.equal(l[streamsAt + 3], '', 'no row for a stream nobody publishes');
    assert.match(l[viewersAt + 1], /^STREAM\s+VIEWER\s+UPTIME\s+LOSS\s+JITTER\s+RTT\s+PKTS OUT\s+SEND ERR\s+RTX\s+LAYER\s+PATH$/);
    assert.match(l[viewersAt + 2], /^main\s+10\.0\.0\.3:50000\s+3m05s\s+0\.39%\s+1\.50 ms\s+12\.0 ms\s+10,000\s+2\s+40\s+0\s+-$/);
    // The second viewer was moved to the half-size layer: its path takes about 1.18 Mbit/s.
    assert.match(l[viewersAt + 3], /^main\s+10\.0\.0\.4:50001\s+42s\s+-\s+-\s+-\s+10,000\s+1\s+0\s+1\s+1\.18 Mbit\/s$/);
    assert.match(l[viewersAt + 4], /^slides\s+10\.0\.0\.5:50002\s+1h02m\s+/);
  });
  test('an idle relay says so', () => {
    const e = render(relaySnap({ streams: 0, awaitedStreams: 0, viewers: 0, perStream: [], perViewer: [] }), new History(), { width: 116 });
    assert.ok(e.includes('(no streams yet)') && e.includes('(no viewers yet)'));
  });
});

describe('narrow terminals', () => {
  test('property: no line is ever wider than the width, for every role', () => {
    const h = new History();
    for (let i = 0; i < 70; i++) {
      h.record(watchSnap({ packetsReceived: i * 100, bitrateKbps: i * 50 }));
      h.record(shareSnap());
      h.record(relaySnap());
    }
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.option(fc.integer({ min: 1, max: 60 }), { nil: undefined }),
        fc.constantFrom(watchSnap(), shareSnap(), relaySnap(), watchSnap({ stream: 'x'.repeat(64), relay: 'a-very-long-host-name.example.org:5004' })),
        fc.boolean(),
        (width, height, snap, ascii) => {
          const lines = render(snap, h, { width, height, ascii, log: ['x'.repeat(300)], companions: [oneLine(shareSnap())] });
          if (height !== undefined) assert.equal(lines.length, height);
          for (const line of lines) {
            assert.ok(!line.includes('\n'), 'one screen row per line');
            assert.ok([...line].length <= width, `${[...line].length} > ${width}: ${JSON.stringify(line)}`);
          }
        },
      ),
    );
  });
  test('at 40 columns the labels survive and long values are cut with an ellipsis', () => {
    const l = render(watchSnap({ relay: 'a-very-long-host-name.example.org:5004' }), new History(), { width: 40 });
    assert.equal(valueOf(l, 'Lost (wire)'), '30 (0.30%)');
    assert.ok(l[0].endsWith('…'));
    assert.ok(l.some((x) => /^Bitrate\s+now 2\.50 Mbit\/s|^Bitrate\s+2\.50 Mbit\/s/.test(x)));
  });
});

describe('history', () => {
  test('a ring keeps the newest `capacity` samples, oldest first', () => {
    const r = new Ring(3);
    for (const v of [1, 2, 3, 4, 5]) r.push(v);
    assert.deepEqual(r.values(), [3, 4, 5]);
    assert.throws(() => new Ring(0), RangeError);
  });
  test('sixty seconds, no more', () => {
    const h = new History();
    for (let i = 0; i < 100; i++) h.record(watchSnap({ bitrateKbps: i }));
    const b = h.series('bitrate');
    assert.equal(b.length, HISTORY_SAMPLES);
    assert.equal(b[0], 40);
    assert.equal(b.at(-1), 99);
  });
  test('loss is per interval: lost on the wire / expected of that second; no packets, no point', () => {
    const h = new History();
    h.record(watchSnap({ packetsExpected: 100, lostOnWire: 0 }));
    h.record(watchSnap({ packetsExpected: 200, lostOnWire: 10 }));
    h.record(watchSnap({ packetsExpected: 200, lostOnWire: 10, state: 'reconnecting' }));
    h.record(watchSnap({ packetsExpected: 300, lostOnWire: 8 })); // a counter reset: never below 0
    assert.deepEqual(h.series('loss'), [0, 10, null, 0]);
    assert.deepEqual(h.series('jitter'), [1.234, 1.234, null, 1.234]);
  });
});

describe('which terminal', () => {
  const tty = { isTTY: true };
  const pipe = { isTTY: false };
  test('stdout when it is a terminal; stderr when stdout carries the video; none when piped', () => {
    assert.equal(pickTerminal(false, { stdin: tty, stdout: tty, stderr: tty })?.output, tty);
    const video = pickTerminal(true, { stdin: tty, stdout: tty, stderr: { isTTY: true } });
    assert.ok(video && video.output !== tty && video.output.isTTY, 'the video stream is never drawn on');
    assert.equal(pickTerminal(false, { stdin: pipe, stdout: pipe, stderr: pipe }), null);
    assert.equal(pickTerminal(true, { stdin: tty, stdout: tty, stderr: pipe }), null);
    assert.equal(pickTerminal(false, { stdin: pipe, stdout: tty, stderr: pipe })?.input, undefined, 'no keys without a terminal on stdin');
    assert.equal(pickTerminal(false, { stdin: tty, stdout: tty, stderr: tty }, { TERM: 'dumb' }), null, 'a dumb terminal gets the summary line');
  });
  test('UTF-8 from the locale, as ncurses reads it', () => {
    assert.equal(localeIsUtf8({ LANG: 'en_US.UTF-8' }), true);
    assert.equal(localeIsUtf8({ LC_ALL: 'C', LANG: 'en_US.UTF-8' }), false);
    assert.equal(localeIsUtf8({ LC_CTYPE: 'C.utf8' }), true);
    assert.equal(localeIsUtf8({}), false);
  });
});

/**
 * Issue 12, item 3, where the user saw it: watch behind `udpcast impair --down-loss 5%` said
 * "lost 0 (0%)" and counted the relay's retransmissions as "reordered". Now --stats-json, the
 * summary line (and the dashboard, from the same snapshot) report lost on the wire, what was
 * repaired and what was not, and no counter ever goes down.
 *
 *   share ──► relay ──► udpcast impair (5% loss towards the viewer, seeded) ──► watch --stats-json
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpcast, killAll, exited, freePort, sleep, waitFor } from './helpers/cli.ts';
import { skipUnless } from './helpers/tools.ts';
import { WATCH_COUNTERS } from '../src/dashboard/view.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-counters-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});
const skip = skipUnless('ffmpeg');

/** Seconds of test pattern: about 1,800 packets at 25 fps and 320x240. */
const SHARE_SECONDS = 8;
/** Loss impair applies towards the viewer, and how far the measured share may be from it. */
const LOSS = 0.05;
const LOSS_MARGIN = 0.02;
/** Late originals the viewer may tell from re-sent copies: impair here never reorders. */
const MAX_REORDERED = 2;
/** The relay's retransmissions go through impair too (and 5% of them are lost), yet most repairs succeed. */
const MIN_REPAIRED_SHARE = 0.8;
/** The delay line drains and the viewer reads the last datagrams before it is stopped. */
const SETTLE_MS = 1000;

describe('watch counters through udpcast impair', { skip }, () => {
  test('5% loss: lost on the wire ≈ 5%, repaired + unrepaired = lost, reordered ≈ 0, nothing goes down', { timeout: 60_000 }, async () => {
    const relayPort = await freePort();
    const impairPort = await freePort();
    const stats = join(dir, 'watch.json');
    const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(relayPort), '--no-dashboard']);
    await waitFor(() => relay.stderrText().includes('listening'), 8000, 'the relay');
    const impair = udpcast([
      'impair', '--listen', `127.0.0.1:${impairPort}`, '--to', `127.0.0.1:${relayPort}`, '--down-loss', `${LOSS * 100}%`, '--seed', '7',
    ]);
    const watch = udpcast([
      'watch', `127.0.0.1:${impairPort}`, '--player', 'none', '--no-dashboard', '--stats-json', stats, '--duration', '45',
    ]);
    // The relay answered through impair (the ACK may be lost once: subscriptions repeat every second).
    await waitFor(() => /waiting for a sharer/.test(watch.stderrText()), 10_000, 'the relay to answer the viewer through impair');
    const share = udpcast([
      'share', '--relay', `127.0.0.1:${relayPort}`, '--source', 'test', '--size', '320x240', '--fps', '25',
      '--duration', String(SHARE_SECONDS), '--no-dashboard',
    ]);
    assert.equal((await exited(share, 30_000)).code, 0, share.stderrText());
    await sleep(SETTLE_MS);
    watch.child.kill('SIGTERM');
    assert.equal((await exited(watch, 5000)).code, 0, watch.stderrText());
    impair.child.kill('SIGTERM');
    relay.child.kill('SIGTERM');
    await exited(impair, 5000);
    await exited(relay, 5000);

    const lines = readFileSync(stats, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const v = lines.at(-1);
    assert.equal(v.final, true);
    const repaired = v.recoveredByRtx + v.recoveredByFec;
    const share5 = v.lostOnWire / v.packetsExpected;
    console.log(
      `# expected ${v.packetsExpected}, lost on the wire ${v.lostOnWire} (${(100 * share5).toFixed(2)}%): ` +
        `RTX ${v.recoveredByRtx}, FEC ${v.recoveredByFec}, reordered ${v.reordered}, unrepaired ${v.unrepaired}, ` +
        `pending ${v.repairPending}; RFC 3550 lost ${v.rfc3550Lost}; duplicates ${v.duplicates}; NACKs ${v.nacksSent}`,
    );
    assert.ok(v.packetsExpected > 1000, `${v.packetsExpected} packets expected`);
    assert.ok(Math.abs(share5 - LOSS) <= LOSS_MARGIN, `lost on the wire ${(100 * share5).toFixed(2)}%, impair drops ${LOSS * 100}%`);
    assert.equal(v.lostOnWire, repaired + v.reordered + v.unrepaired + v.repairPending, 'every lost packet is accounted for once');
    assert.ok(v.reordered <= MAX_REORDERED, `${v.reordered} counted as reordered: retransmissions are not reordering`);
    assert.ok(Math.abs(repaired + v.unrepaired - v.lostOnWire) <= MAX_REORDERED + v.repairPending, 'repaired + unrepaired = lost on the wire');
    assert.ok(repaired >= MIN_REPAIRED_SHARE * v.lostOnWire, `${repaired} of ${v.lostOnWire} repaired`);
    assert.ok(v.rfc3550Lost <= v.unrepaired, `RFC 3550 lost ${v.rfc3550Lost} is loss after repair (unrepaired ${v.unrepaired})`);

    // No counter ever goes back (no `r` here), but two that are not counts of events:
    // rfc3550Lost is expected - received (RFC 3550 A.3), so a packet counted lost that arrives
    // later (re-sent) takes it down again; playerDropped starts over with each new player.
    const NOT_MONOTONIC = new Set(['rfc3550Lost', 'playerDropped']);
    for (let i = 1; i < lines.length; i++) {
      for (const k of WATCH_COUNTERS.filter((c) => !NOT_MONOTONIC.has(c))) {
        assert.ok(lines[i][k] >= lines[i - 1][k], `${k} went from ${lines[i - 1][k]} to ${lines[i][k]} at line ${i + 1}`);
      }
    }
    // The summary line says the same thing in words.
    const summary = watch.stderrText().trim().split('\n').filter((l) => l.startsWith('watch main')).at(-1)!;
    assert.match(summary, new RegExp(`lost ${v.lostOnWire} \\(${v.lostOnWirePercent}%\\) on the wire: ${repaired} repaired, ${v.unrepaired} unrepaired`), summary);
  });
});

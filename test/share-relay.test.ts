/**
 * A sharer notices its relay (issue 12, item 4): when the relay stops answering it says so (a log
 * line, `relayState` in --stats-json, the summary line gives no sending rate), keeps announcing,
 * and says when the relay answers again. Also: a keyed relay refusing a sharer that sent no key
 * says that a key is required, not that ours was refused.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpcast, killAll, exited, freePort, waitFor, type Running } from './helpers/cli.ts';
import { lastStats } from './helpers/decode.ts';
import { skipUnless } from './helpers/tools.ts';
import { RelayLiveness } from '../src/transport/publisher.ts';
import { KEEPALIVE_MS, RELAY_SILENT_MS } from '../src/defaults.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-share-relay-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});
const skip = skipUnless('ffmpeg');

/** The last --stats-json line so far ({} before the first). */
function latest(file: string): Record<string, any> {
  const text = readFileSync(file, 'utf8');
  return text.trim() ? lastStats(text) : {};
}

describe('RelayLiveness', () => {
  test('connecting until the first answer; silent for RELAY_SILENT_MS is not answering; the next answer ends it', () => {
    const l = new RelayLiveness();
    assert.equal(l.state, 'connecting');
    assert.equal(l.check(60_000), false, 'never answered: the connect timeout speaks, not this');
    assert.equal(l.answered(1000), undefined, 'the first answer ends no outage');
    assert.equal(l.state, 'ok');
    assert.equal(l.check(1000 + RELAY_SILENT_MS - 1), false, 'a few lost ACKs are not an outage');
    assert.equal(l.check(1000 + RELAY_SILENT_MS), true);
    assert.equal(l.state, 'not answering');
    assert.equal(l.check(1000 + RELAY_SILENT_MS + KEEPALIVE_MS), false, 'said once');
    assert.equal(l.silentFor(9000), 8000);
    assert.equal(l.outages, 1);
    assert.equal(l.answered(9000), 8000, 'back after 8 s of silence');
    assert.equal(l.state, 'ok');
    assert.equal(l.silentFor(9500), 0);
    assert.equal(l.check(9000 + RELAY_SILENT_MS), true, 'a second outage');
    assert.equal(l.outages, 2);
  });
});

describe('share --relay: a relay that dies and comes back', { skip }, () => {
  test('says "not answering" within a few seconds of SIGKILL, and "answering again" once restarted', async () => {
    const port = await freePort();
    const relayArgs = ['relay', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard'];
    const relay = udpcast(relayArgs);
    let share: Running | undefined;
    let again: Running | undefined;
    try {
      await waitFor(() => relay.stderrText().includes('listening'), 10_000, 'the relay');
      const stats = join(dir, 'share.json');
      share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--no-dashboard', '--stats-json', stats]);
      await waitFor(() => /publisher/.test(relay.stderrText()), 15_000, 'the sharer to publish');
      await waitFor(() => latest(stats).relayState === 'ok', 5000, 'relayState ok');

      process.kill(relay.pid, 'SIGKILL');
      const killedAt = Date.now();
      const silent = new RegExp(`relay 127\\.0\\.0\\.1:${port} not answering for \\d+ s: still sending, retrying every 1 s`);
      await waitFor(() => silent.test(share!.stderrText()), RELAY_SILENT_MS + KEEPALIVE_MS + 3000, 'the sharer to notice');
      const noticedMs = Date.now() - killedAt;
      assert.ok(noticedMs <= RELAY_SILENT_MS + KEEPALIVE_MS + 1000, `noticed after ${noticedMs} ms`);
      await waitFor(() => latest(stats).relayState === 'not answering', 3000, 'relayState not answering');
      const during = latest(stats);
      assert.ok(during.relaySilentS >= RELAY_SILENT_MS / 1000, JSON.stringify(during));
      assert.equal(during.relayOutages, 1);
      // The summary line (every 5 s) says so instead of a sending rate.
      const summary = new RegExp(`share main: relay 127\\.0\\.0\\.1:${port} not answering for \\d+ s, retrying; \\d+ frames encoded`);
      await waitFor(() => summary.test(share!.stderrText()), 8000, 'the summary line to say so');
      assert.doesNotMatch(share.stderrText().split('not answering')[1], /kbit\/s/, 'no sending rate while the relay is silent');

      again = udpcast(relayArgs);
      await waitFor(() => /answering again after \d+ s/.test(share!.stderrText()), 10_000, 'the sharer to see the relay back');
      await waitFor(() => /publisher/.test(again!.stderrText()), 3000, 'the restarted relay to carry the stream');
      await waitFor(() => latest(stats).relayState === 'ok', 3000, 'relayState ok again');
      assert.equal(latest(stats).relaySilentS, null);

      share.child.kill('SIGTERM');
      assert.equal((await exited(share, 10_000)).code, 0);
      again.child.kill('SIGTERM');
      await exited(again, 5000);
    } finally {
      for (const r of [share, again, relay]) r?.child.kill('SIGTERM');
      for (const r of [share, again, relay]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });

  test('a keyed relay and no --key: "requires a key", one line, exit 2', async () => {
    const port = await freePort();
    const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--key', 'relay-secret-1', '--no-dashboard']);
    let share: Running | undefined;
    try {
      await waitFor(() => relay.stderrText().includes('listening'), 10_000, 'the relay');
      share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--no-dashboard']);
      const e = await exited(share, 20_000);
      const err = share.stderrText().trim();
      assert.equal(e.code, 2, err);
      // The line that ends the run (after FFmpeg's start) says what to do.
      const last = err.split('\n').at(-1)!;
      assert.match(last, new RegExp(`^cannot publish: relay 127\\.0\\.0\\.1:${port} requires a key: share with --key or --key-file`));
      assert.doesNotMatch(err, /refused our key/, 'we sent no key to refuse');
      relay.child.kill('SIGTERM');
      await exited(relay, 5000);
    } finally {
      for (const r of [share, relay]) r?.child.kill('SIGTERM');
      for (const r of [share, relay]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });
});

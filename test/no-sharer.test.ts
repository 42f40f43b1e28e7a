/**
 * Issue 12, item 5: watching a stream nobody publishes was silent for 13 s and exited 0, and the
 * relay counted the name as a stream. Now watch says at once that it waits for a sharer (and again
 * every WAITING_NOTICE_MS), keeps waiting, and fails when --duration ends with no sharer ever; the
 * relay counts only published streams.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpcast, killAll, exited, freePort, waitFor, type Running } from './helpers/cli.ts';
import { skipUnless } from './helpers/tools.ts';
import { WAITING_NOTICE_MS } from '../src/defaults.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-nosharer-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** "At once": the relay's first answer, through tsx startup on a busy machine. */
const AT_ONCE_MS = 8000;

/** The newest --stats-json line ({} before the first one, a second after start). */
function lastJson(file: string): Record<string, any> {
  const text = readFileSync(file, 'utf8').trim();
  return text ? JSON.parse(text.split('\n').at(-1)!) : {};
}

describe('a stream nobody publishes', () => {
  test('watch says it waits for a sharer, repeats it, and --duration without one is a failure', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const relayStats = join(dir, 'relay.json');
    const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard', '--stats-json', relayStats]);
    let watch: Running | undefined;
    try {
      await waitFor(() => relay.stderrText().includes('listening'), 8000, 'the relay');
      const seconds = Math.ceil((WAITING_NOTICE_MS * 1.5) / 1000);
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--stream', 'nobody', '--player', 'none', '--no-dashboard', '--duration', String(seconds)]);
      const notice = `waiting for a sharer on stream nobody at 127.0.0.1:${port}`;
      await waitFor(() => watch!.stderrText().includes(notice), AT_ONCE_MS, `"${notice}"`);

      // The relay: a viewer waiting on a name, which is not a stream.
      await waitFor(() => lastJson(relayStats).viewers === 1, 3000, 'the relay to count the viewer');
      const r = lastJson(relayStats);
      assert.equal(r.streams, 0, 'a name nobody publishes is not a stream');
      assert.equal(r.awaitedStreams, 1);
      assert.deepEqual(r.perStream, []);
      assert.equal(r.perViewer[0].stream, 'nobody');
      assert.match(relay.stderrText(), /stream nobody: viewer .* joined \(1 watching, no sharer yet\)/);

      const { code } = await exited(watch, (seconds + 10) * 1000);
      const err = watch.stderrText();
      assert.equal(code, 1, `no sharer ever: not a success\n${err}`);
      const notices = err.split('\n').filter((l) => l === notice);
      assert.equal(notices.length, 2, `said at once and again after ${WAITING_NOTICE_MS} ms:\n${err}`);
      assert.match(err.trim().split('\n').at(-1)!, new RegExp(`^no sharer published stream nobody at 127\\.0\\.0\\.1:${port} in ${seconds} s$`));
      relay.child.kill('SIGTERM');
      assert.equal((await exited(relay, 5000)).code, 0);
    } finally {
      for (const r of [watch, relay]) r?.child.kill('SIGTERM');
      for (const r of [watch, relay]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });

  test('once a sharer comes, the viewer plays and the relay counts one stream', { timeout: 60_000, skip: skipUnless('ffmpeg') }, async () => {
    const port = await freePort();
    const relayStats = join(dir, 'relay2.json');
    const watchStats = join(dir, 'watch2.json');
    const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard', '--stats-json', relayStats]);
    let watch: Running | undefined;
    let share: Running | undefined;
    try {
      await waitFor(() => relay.stderrText().includes('listening'), 8000, 'the relay');
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--stats-json', watchStats, '--duration', '30']);
      await waitFor(() => watch!.stderrText().includes('waiting for a sharer'), AT_ONCE_MS, 'the waiting notice');
      await waitFor(() => lastJson(watchStats).state === 'waiting', 3000, 'state "waiting" in --stats-json');
      share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--duration', '4', '--no-dashboard']);
      await waitFor(() => lastJson(watchStats).framesComplete > 10, 15_000, 'frames at the viewer');
      await waitFor(() => lastJson(relayStats).streams === 1, 3000, 'the relay to count the stream');
      assert.equal(lastJson(relayStats).awaitedStreams, 0);
      assert.equal((await exited(share, 20_000)).code, 0, share.stderrText());
      watch.child.kill('SIGTERM');
      assert.equal((await exited(watch, 5000)).code, 0, watch.stderrText());
      relay.child.kill('SIGTERM');
      await exited(relay, 5000);
    } finally {
      for (const r of [share, watch, relay]) r?.child.kill('SIGTERM');
      for (const r of [share, watch, relay]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });
});

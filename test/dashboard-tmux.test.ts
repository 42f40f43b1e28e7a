/**
 * The dashboards on a real terminal: each role runs inside a detached tmux pane (120x40), the
 * screen is read back with `capture-pane`, and we check what a person would: the labels are there,
 * the numbers move while a stream runs, `?` shows the keys, and `q` (or Ctrl-C, or the run ending)
 * gives back a normal terminal: no alternate screen, cursor visible, no dashboard frame left, the
 * shell's next line printed below.
 *
 * A private tmux server (-L udpcast-test-PID) keeps a user's tmux untouched; it is killed afterwards.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { alive, exited, freePort, killAll, ROOT, sleep, udpcast, waitFor, type Running } from './helpers/cli.ts';
import { skipUnless } from './helpers/tools.ts';

const skip = skipUnless('tmux', 'ffmpeg');
const SOCKET = `udpcast-test-${process.pid}`;
/** UTF-8 so tmux keeps the block characters in what it captures. */
const ENV = { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
/** Time for tsx to start, FFmpeg to deliver its first frames and the first snapshot to be drawn. */
const READY_MS = 20_000;
const EXIT_MS = 8_000;

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8', env: ENV });
}

let sessions = 0;
/** Runs `udpcast ARGS` in a new pane; after it ends the pane prints EXITED:code and stays. */
function inTmux(args: string[]): string {
  const name = `dash${++sessions}`;
  const cmd = `env NCURSES_NO_UTF8_ACS=1 node --import tsx bin/udpcast.ts ${args.join(' ')}; echo EXITED:$?; sleep 30`;
  tmux('new-session', '-d', '-s', name, '-x', '120', '-y', '40', '-c', ROOT, 'sh', '-c', cmd);
  return name;
}

const screen = (name: string) => tmux('capture-pane', '-p', '-t', name);


/**
 * For `finally`: a pane whose udpcast still runs (its test failed first) is closed with its session
 * (SIGHUP: udpcast ends as on Ctrl-C) and given 5 s to go. One that printed EXITED is left as it was.
 */
async function endPane(name: string): Promise<void> {
  let pids: number[];
  try {
    if (screen(name).includes('EXITED:')) return;
    const shell = tmux('display-message', '-p', '-t', name, '#{pane_pid}').trim();
    pids = execFileSync('pgrep', ['-P', shell], { encoding: 'utf8' }).trim().split('\n').map(Number);
    tmux('kill-session', '-t', name);
  } catch {
    return; // the session, or what ran in it, is gone already
  }
  await waitFor(() => !pids.some(alive), 5000, `pane ${name} to end`).catch(() => undefined);
}

async function waitScreen(name: string, re: RegExp, what: string): Promise<string> {
  let last = '';
  try {
    await waitFor(() => re.test((last = screen(name))), READY_MS, what);
  } catch (err) {
    throw new Error(`${(err as Error).message}; the screen was:\n${last}`);
  }
  return last;
}

/** The first number after `re` (thousands separators removed). */
function number(text: string, re: RegExp): number {
  const m = re.exec(text);
  assert.ok(m, `${re} not on screen:\n${text}`);
  return Number(m[1].replace(/,/g, ''));
}

/** Two captures a couple of seconds apart: the counter went up. */
async function assertMoves(name: string, re: RegExp): Promise<void> {
  const first = screen(name);
  await sleep(2200);
  const second = screen(name);
  const [a, b] = [number(first, re), number(second, re)];
  assert.ok(b > a, `${re}: ${a} then ${b}, expected it to grow while the stream runs; screens:\n${first}\n${second}`);
}

async function assertHelp(name: string): Promise<void> {
  tmux('send-keys', '-t', name, '?');
  await waitScreen(name, /q, Ctrl-C\s+quit/, 'the key help');
  tmux('send-keys', '-t', name, '?');
  await waitFor(() => !/q, Ctrl-C\s+quit/.test(screen(name)), 3000, 'the key help to close');
}

/** The process ended with `code` and the terminal is as the shell left it. */
async function assertRestored(name: string, code: number, title: RegExp): Promise<string> {
  const text = await waitScreen(name, new RegExp(`EXITED:${code}`), `EXITED:${code}`);
  assert.equal(tmux('display-message', '-p', '-t', name, '#{alternate_on}').trim(), '0', 'alternate screen left');
  assert.equal(tmux('display-message', '-p', '-t', name, '#{cursor_flag}').trim(), '1', 'cursor visible again');
  assert.doesNotMatch(text, /[┌┐└┘│]|^\+-{10}/m, `no dashboard frame left:\n${text}`);
  assert.doesNotMatch(text, title, 'no dashboard title left');
  return text;
}

describe('dashboards in a real terminal (tmux)', { skip }, () => {
  after(() => {
    try {
      const socketPath = tmux('display-message', '-p', '#{socket_path}').trim();
      tmux('kill-server');
      rmSync(socketPath, { force: true }); // tmux leaves the socket file behind
    } catch {
      // no server was started
    }
    killAll();
  });

  test('watch: every label, frames counting, r resets, ? helps, q quits and restores', async () => {
    const port = await freePort();
    const share = udpcast(['share', '--source', 'test', '--host', '127.0.0.1', '--port', String(port), '--fps', '15', '--no-dashboard']);
    let name: string | undefined;
    try {
      // watch gives up after 5 s without an answer: start it once the sharer's relay is listening.
      await waitFor(() => /relay listening on/.test(share.stderrText()), READY_MS, 'the sharer to listen');
      name = inTmux(['watch', `127.0.0.1:${port}`, '--player', 'none']);
      const text = await waitScreen(name, /Frames\s+[1-9]/, 'frames on the watch dashboard');
      for (const label of ['udpcast watch', 'Stream', 'Resolution', 'Codec', 'FPS', 'Bitrate', 'Packets', 'Loss', 'Jitter', 'Latency', 'Frames', 'Dropped', 'State', 'NACKs sent', 'By RTX', 'By FEC', 'Given up', 'Key req.', 'RTT', 'Last 60 s']) {
        assert.ok(text.includes(label), `label ${label} missing:\n${text}`);
      }
      assert.equal(tmux('display-message', '-p', '-t', name, '#{alternate_on}').trim(), '1', 'drawn on the alternate screen');
      assert.equal(tmux('display-message', '-p', '-t', name, '#{cursor_flag}').trim(), '0', 'cursor hidden while drawing');
      assert.match(text, /LIVE/);
      assert.match(text, /Resolution\s+1280x720/);
      assert.match(text, /[▁▂▃▄▅▆▇█]/, 'sparklines drawn');
      await assertMoves(name, /Frames\s+([\d,]+)/);

      tmux('send-keys', '-t', name, 'r');
      const reset = await waitScreen(name, /counters since reset/, 'the reset marker');
      assert.ok(number(reset, /Frames\s+([\d,]+)/) < number(text, /Frames\s+([\d,]+)/) + 15, 'frames counted from the reset');

      await assertHelp(name);
      tmux('send-keys', '-t', name, 'q');
      const after = await assertRestored(name, 0, /udpcast watch {2}main @/);
      assert.match(after, /^watch main \[live\]/m, 'the final summary lands on the normal screen');
    } finally {
      if (name) await endPane(name);
      share.child.kill('SIGTERM');
      await exited(share, 5000).catch(() => undefined);
    }
  });

  test('share: encoder numbers move, a viewer report row, Ctrl-C quits and restores', async () => {
    const port = await freePort();
    const name = inTmux(['share', '--source', 'test', '--host', '127.0.0.1', '--port', String(port), '--fps', '15']);
    let watch: Running | undefined;
    try {
      await waitScreen(name, /Encoded\s+[1-9]/, 'frames encoded on the share dashboard');
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard']);
      const text = await waitScreen(name, /^\W*[0-9a-f]{8}\s+\d+\.\d\d%/m, 'a viewer report row').catch((err: Error) => {
        throw new Error(`${err.message}\nwatch's stderr:\n${watch!.stderrText()}`);
      });
      for (const label of ['udpcast share', 'FPS', 'Bitrate', 'Encoded', 'Viewers', 'Worst loss', 'Worst RTT', 'Viewer reports', 'VIEWER SSRC']) {
        assert.ok(text.includes(label), `label ${label} missing:\n${text}`);
      }
      assert.match(text, /Viewers\s+1\b/);
      await assertMoves(name, /Encoded\s+([\d,]+)/);
      await assertHelp(name);
      tmux('send-keys', '-t', name, 'C-c');
      await assertRestored(name, 0, /udpcast share {2}main/);
    } finally {
      await endPane(name);
      watch?.child.kill('SIGTERM');
      if (watch) await exited(watch, 5000).catch(() => undefined);
    }
  });

  test('relay: totals, a row per stream and per viewer, packets counting, q quits and restores', async () => {
    const port = await freePort();
    const name = inTmux(['relay', '--host', '127.0.0.1', '--port', String(port)]);
    let share: Running | undefined;
    let watch: Running | undefined;
    try {
      await waitScreen(name, /udpcast relay/, 'the relay dashboard');
      share = udpcast(['share', '--source', 'test', '--relay', `127.0.0.1:${port}`, '--fps', '15', '--no-dashboard']);
      const streamRow = /main\s+127\.0\.0\.1:\d+\s+[\d.]+ [kM]bit\/s\s+([\d,]+)/;
      await waitScreen(name, streamRow, 'a stream row with its publisher').catch((err: Error) => {
        throw new Error(`${err.message}\nshare's stderr:\n${share!.stderrText()}`);
      });
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard']);
      const text = await waitScreen(name, /main\s+127\.0\.0\.1:\d+\s+\d+s\s/, 'a viewer row on the relay dashboard');
      for (const label of ['Bitrate in', 'Bitrate out', 'Dropped', 'Streams', 'Viewers', 'PUBLISHER', 'BITRATE IN', 'PKTS IN', 'PKTS OUT', 'DROPS', 'UPTIME', 'LOSS', 'JITTER', 'RTT']) {
        assert.ok(text.includes(label), `label ${label} missing:\n${text}`);
      }
      assert.match(text, /1 stream, 1 viewer/);
      await assertMoves(name, streamRow);
      await assertHelp(name);
      tmux('send-keys', '-t', name, 'q');
      await assertRestored(name, 0, /udpcast relay {2}127/);
    } finally {
      await endPane(name);
      for (const r of [watch, share]) r?.child.kill('SIGTERM');
      for (const r of [watch, share]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });

  test('SIGTERM ends the relay cleanly and restores the terminal', async () => {
    const name = inTmux(['relay', '--host', '127.0.0.1', '--port', String(await freePort())]);
    try {
      await waitScreen(name, /\(no streams yet\)/, 'the relay dashboard');
      // The pane runs `sh -c …`; its child is the udpcast process (env execs node).
      const shell = tmux('display-message', '-p', '-t', name, '#{pane_pid}').trim();
      const pid = Number(execFileSync('pgrep', ['-P', shell], { encoding: 'utf8' }).trim().split('\n')[0]);
      assert.ok(pid > 0, 'udpcast pid');
      process.kill(pid, 'SIGTERM');
      const text = await assertRestored(name, 0, /udpcast relay {2}127/);
      assert.match(text, /^relay: 0 stream\(s\)/m, 'final summary after the terminal is back');
    } finally {
      await endPane(name);
    }
  });

  test('demo: the watch dashboard with the sharer in a side line; the run ending restores the terminal', async () => {
    const name = inTmux(['demo', '--port', '0', '--player', 'none', '--duration', '6']);
    try {
      const text = await waitScreen(name, /Also in this process[\s\S]*share main: /, 'the demo dashboard');
      assert.match(text, /udpcast watch {2}main @/);
      await assertRestored(name, 0, /udpcast watch {2}main @/);
    } finally {
      await endPane(name);
    }
  });
});

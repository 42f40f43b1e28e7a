/**
 * What watch hands its frames to: the container chosen from --output's name, the two clocks (live:
 * stamped on arrival, stale frames not advanced; recordings: RTP time, unwrapped, bridged across a
 * sharer restart), the display check, and the player sink's "fallen behind → held back →
 * restarted live from the last keyframe", with a real child process standing in for ffplay.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn as nodeSpawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FfplaySink, outputFormat, type SinkFrame } from '../src/player/sinks.ts';
import { PLAYER_LAG_MS, PLAYER_STALL_MS, PlayerWatchdog, parseStatusLine } from '../src/player/watchdog.ts';
import { LiveClock, RecordingClock, STALE_SLACK_MS } from '../src/player/clock.ts';
import { displayMissing } from '../src/player/display.ts';
import { checkOutput } from '../src/cli/options.ts';
import { UsageError } from '../src/util/errors.ts';
import type { SpawnFn } from '../src/util/child.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-sinks-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) {
    try {
      if (c.pid) process.kill(c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('--output: the container from the file name', () => {
  test('known extensions, any case; stdout is Matroska', () => {
    assert.equal(outputFormat('rec.mkv'), 'mkv');
    assert.equal(outputFormat('REC.MP4'), 'mp4');
    assert.equal(outputFormat('a/b.c/raw.h264'), 'h264');
    assert.equal(outputFormat('raw.264'), 'h264');
    assert.equal(outputFormat('x.mjpeg'), 'mjpeg');
    assert.equal(outputFormat('x.mjpg'), 'mjpeg');
    assert.equal(outputFormat('-'), 'mkv');
  });

  test('an unknown or missing extension is a one-line error naming the choices', () => {
    assert.throws(() => outputFormat('clip.avi'), (e: Error) => e instanceof UsageError && /unknown extension "\.avi"; use \.mkv or \.mp4/.test(e.message) && !e.message.includes('\n'));
    assert.throws(() => outputFormat('dir.d/recording'), /unknown extension \(none\)/);
    assert.throws(() => checkOutput(join(dir, 'x.webm'), false), /unknown extension "\.webm"/);
  });

  test('- to a terminal is refused with a hint; piped it is taken', () => {
    assert.throws(() => checkOutput('-', true), (e: Error) => e instanceof UsageError && /would write video to this terminal: pipe it/.test(e.message));
    assert.equal(checkOutput('-', false), '-');
  });
});

describe('LiveClock: due on arrival, stale frames not advanced', () => {
  test('live frames carry their arrival time; catch-up frames keep the last time', () => {
    const c = new LiveClock();
    const budget = 100;
    const late = budget + STALE_SLACK_MS + 1;
    // A joining viewer: the keyframe 1.9 s old, catch-up frames arriving 4 ms apart, then live.
    assert.deepEqual(c.stamp({ latencyMs: 1900 }, 1000, budget), { pts: 0, stale: true });
    assert.deepEqual(c.stamp({ latencyMs: 1500 }, 1004, budget), { pts: 0, stale: true });
    assert.deepEqual(c.stamp({ latencyMs: late }, 1008, budget), { pts: 0, stale: true });
    assert.deepEqual(c.stamp({ latencyMs: 30 }, 1012, budget), { pts: 12 * 90, stale: false });
    assert.deepEqual(c.stamp({ latencyMs: 35 }, 1045, budget), { pts: 45 * 90, stale: false });
    // Within the repair budget a late frame is still live; unknown latency (no SR yet) too.
    assert.deepEqual(c.stamp({ latencyMs: budget + STALE_SLACK_MS }, 1078, budget), { pts: 78 * 90, stale: false });
    assert.deepEqual(c.stamp({}, 1111, budget), { pts: 111 * 90, stale: false });
    assert.equal(c.stale, 3);
    c.reset();
    assert.deepEqual(c.stamp({ latencyMs: 20 }, 5000, budget), { pts: 0, stale: false });
  });
});

describe('RecordingClock: RTP time, unwrapped and bridged', () => {
  test('30 fps across the 32-bit wrap, then a 2 s freeze kept', () => {
    const c = new RecordingClock();
    assert.equal(c.stamp(0xffff_f000, 0), 0);
    assert.equal(c.stamp(0xffff_f000 + 3000 - 2 ** 32, 33), 3000); // wrapped past zero
    assert.equal(c.stamp(3000 - 0x1000 + 3000 + 180_000, 2033), 186_000, 'the freeze lasts 2 s');
  });

  test('a new sharer session (RTP clock starts anywhere): the arrival clock bridges the jump', () => {
    const c = new RecordingClock();
    c.stamp(1000, 0);
    c.stamp(4000, 33);
    assert.equal(c.stamp(2_000_000_000, 1033), 3000 + 1000 * 90);
    assert.equal(c.stamp(2_000_003_000, 1066), 3000 + 1000 * 90 + 3000, 'then RTP time again');
  });
});

describe('displayMissing', () => {
  test('Linux needs DISPLAY or WAYLAND_DISPLAY; Windows and macOS always have a desktop', () => {
    assert.match(displayMissing({}, 'linux')!, /no display/);
    assert.equal(displayMissing({ DISPLAY: ':0' }, 'linux'), undefined);
    assert.equal(displayMissing({ WAYLAND_DISPLAY: 'wayland-0' }, 'linux'), undefined);
    assert.equal(displayMissing({}, 'win32'), undefined);
    assert.equal(displayMissing({}, 'darwin'), undefined);
  });
});

describe('PlayerWatchdog: is the player keeping up?', () => {
  test("ffplay's status lines, as FFmpeg 5.1 prints them", () => {
    assert.deepEqual(parseStatusLine('    nan    :  0.000 fd=   0 aq=    0KB vq=    0KB sq=    0B f=0/0   '), { clockSec: NaN, dropped: 0 });
    assert.deepEqual(parseStatusLine('   0.12 M-V:  0.014 fd=   3 aq=    0KB vq=  222KB sq=    0B f=0/0   '), { clockSec: 0.12, dropped: 3 });
    assert.deepEqual(parseStatusLine('1234.56 M-V: -0.001 fd=  35 aq=    0KB vq=    0KB sq=    0B f=0/0'), { clockSec: 1234.56, dropped: 35 });
    assert.equal(parseStatusLine('[h264 @ 0x55] error while decoding MB 3 4'), undefined);
  });

  test('starting until it speaks; live while lines come; stalled when they stop; lagging after a pause', () => {
    const w = new PlayerWatchdog();
    assert.equal(w.check(0), 'starting');
    // Clock 0.00 s at 1000 ms, then steady: every 30 ms a line, the clock advancing with us.
    for (let t = 1000; t <= 2000; t += 30) w.status((t - 1000) / 1000, 0, t);
    assert.equal(w.check(2000), 'live');
    assert.ok(w.lagMs <= 10);
    assert.equal(w.check(2000 + PLAYER_STALL_MS + 1), 'stalled', 'paused: the lines stop');
    // Resumed after 6 s: its clock went on from where it stopped.
    w.status(1.0, 0, 8000);
    assert.equal(w.check(8000), 'lagging');
    assert.ok(w.lagMs > PLAYER_LAG_MS);
  });

  test('writes left unread for PLAYER_STALL_MS are a stall too, until it drains', () => {
    const w = new PlayerWatchdog();
    w.blocked(100);
    w.blocked(200); // the first time counts
    assert.equal(w.check(100 + PLAYER_STALL_MS), 'starting');
    assert.equal(w.check(101 + PLAYER_STALL_MS), 'stalled');
    w.drained();
    assert.equal(w.check(1000), 'starting');
  });
});

/** Stands in for ffplay: a node child copying its stdin to a file, one file per start. */
function standIns(): { spawn: SpawnFn; files: string[]; procs: ChildProcess[] } {
  const files: string[] = [];
  const procs: ChildProcess[] = [];
  const spawn = ((_cmd: string, _args: string[], opts: object) => {
    const file = join(dir, `player-${files.length}.mkv`);
    files.push(file);
    const script = "process.stdin.pipe(require('fs').createWriteStream(process.argv[1]))";
    const child = nodeSpawn(process.execPath, ['-e', script, file], opts);
    procs.push(child);
    children.push(child);
    return child;
  }) as unknown as SpawnFn;
  return { spawn, files, procs };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FfplaySink', () => {
  test('a player that stops reading is marked behind, fed nothing, then restarted live from the last keyframe', async () => {
    const { spawn, files, procs } = standIns();
    const logs: string[] = [];
    const exits: unknown[] = [];
    const sink = new FfplaySink({ ffplayPath: 'ffplay', title: 't', budgetMs: () => 100, log: (l) => logs.push(l), onExit: (c) => exits.push(c), spawn });
    // A hand-made keyframe: SPS (320x240), PPS, and a 60 KB IDR so the pipe fills fast.
    const au = (idr: boolean, bytes: number) => Buffer.concat([
      Buffer.from('000000016742c01e8c8d40a0fd00f0884535000000016' + '8ce3c80', 'hex'),
      Buffer.from([0, 0, 0, 1, idr ? 0x65 : 0x41]), Buffer.alloc(bytes, 0x55),
    ]);
    let ts = 0;
    const frame = (keyframe: boolean): SinkFrame => ({ codec: 'h264', data: au(keyframe, 60_000), keyframe, timestamp: (ts += 3000), latencyMs: 20 });
    try {
      await sleep(200); // the stand-in is up
      sink.write(frame(true), Date.now());
      sink.write(frame(false), Date.now());
      await sleep(100);
      process.kill(procs[0].pid!, 'SIGSTOP'); // a CPU stall, or a paused player
      const stalledAt = Date.now();
      while (sink.state === 'live' && Date.now() - stalledAt < 5000) {
        sink.write(frame(false), Date.now());
        await sleep(20);
      }
      assert.equal(sink.state, 'behind', 'noticed');
      assert.ok(Date.now() - stalledAt > PLAYER_STALL_MS);
      assert.ok(logs.some((l) => /player fell behind/.test(l)), logs.join('\n'));
      // A keyframe while it is stalled: the restart starts from it.
      sink.write(frame(true), Date.now());
      sink.write(frame(false), Date.now());
      const held = sink.framesHeldBack;
      assert.ok(held >= 2);
      process.kill(procs[0].pid!, 'SIGCONT');
      const resumedAt = Date.now();
      while (sink.restarts === 0 && Date.now() - resumedAt < 5000) await sleep(10);
      assert.equal(sink.restarts, 1, 'restarted once it read again');
      assert.equal(sink.state, 'live');
      assert.equal(files.length, 2, 'a second player');
      sink.write(frame(false), Date.now());
      await sleep(300);
      const second = readFileSync(files[1]);
      assert.deepEqual(second.subarray(0, 4), Buffer.from('1a45dfa3', 'hex'), 'a Matroska header first');
      assert.ok(second.length > 3 * 60_000, `the keyframe, the frame after it and the live one: ${second.length} bytes`);
      assert.deepEqual(exits, [], 'a restart is not the player ending');
    } finally {
      for (const p of procs) {
        try {
          if (p.pid) process.kill(p.pid, 'SIGCONT');
        } catch {
          // already gone (the restart ended it)
        }
      }
      await sink.close();
    }
    assert.ok(files.every(existsSync));
  });
});

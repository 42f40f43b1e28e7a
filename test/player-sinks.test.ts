/**
 * What watch hands its frames to: the container chosen from --output's name, the two clocks (live:
 * stamped on arrival, stale frames not advanced; recordings: RTP time, unwrapped, bridged across a
 * sharer restart), the display check, and the player sink's "fallen behind → held back →
 * restarted live from the last keyframe", with a real child process standing in for ffplay.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink, outputFormat, type SinkFrame } from '../src/player/sinks.ts';
import { FFPLAY_SIGNAL_EXIT, FfplaySink, type PlayerExit } from '../src/player/ffplay.ts';
import { PlayerWatchdog, parseStatusLine } from '../src/player/watchdog.ts';
import { LiveClock, RecordingClock } from '../src/player/clock.ts';
import {
  CLOCK_SKEW_WINDOW_MS, PLAYER_CHECK_MS, PLAYER_LAG_MS, PLAYER_RESTART_MIN_MS, PLAYER_STALL_MS, PLAYER_STARTUP_GRACE_MS, PLAYER_STARTUP_STALL_MS, STALE_SLACK_MS,
} from '../src/defaults.ts';
import { displayMissing } from '../src/player/display.ts';
import { checkOutput } from '../src/apps/options.ts';
import { UsageError } from '../src/util/errors.ts';
import type { SpawnFn } from '../src/util/child.ts';
import type { ReceivedAudio } from '../src/player/audio.ts';
import { waitFor } from './helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-sinks-'));
after(() => rmSync(dir, { recursive: true, force: true }));

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

  test("the viewer's clock 2 s ahead of the sharer's: every frame looks late until a whole window says so", () => {
    const c = new LiveClock();
    const budget = 100;
    let stale = 0;
    for (let t = 0; t < CLOCK_SKEW_WINDOW_MS; t += 33) if (c.stamp({ latencyMs: 2030 + (t % 20) }, t, budget).stale) stale++;
    assert.equal(stale, Math.ceil(CLOCK_SKEW_WINDOW_MS / 33), 'no better reference yet');
    // From then on the window's best latency (2030 ms) stands in for zero.
    assert.deepEqual(c.stamp({ latencyMs: 2040 }, CLOCK_SKEW_WINDOW_MS + 10, budget), { pts: (CLOCK_SKEW_WINDOW_MS + 10) * 90, stale: false });
    assert.equal(c.stamp({ latencyMs: 2030 + budget + STALE_SLACK_MS + 1 }, CLOCK_SKEW_WINDOW_MS + 40, budget).stale, true, 'a frame late by more than the budget is still stale');
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
    assert.deepEqual(parseStatusLine('    nan    :  0.000 fd=   0 aq=    0KB vq=    0KB sq=    0B f=0/0   '), { clockSec: NaN, dropped: 0, avSec: NaN });
    assert.deepEqual(parseStatusLine('   0.12 M-V:  0.014 fd=   3 aq=    0KB vq=  222KB sq=    0B f=0/0   '), { clockSec: 0.12, dropped: 3, avSec: NaN });
    assert.deepEqual(parseStatusLine('1234.56 M-V: -0.001 fd=  35 aq=    0KB vq=    0KB sq=    0B f=0/0'), { clockSec: 1234.56, dropped: 35, avSec: NaN });
    // With a sound track: A-V, the sound's clock minus the picture's, 'nan' until sound plays.
    assert.deepEqual(parseStatusLine('   0.26 A-V:    nan fd=  25 aq=    0KB vq=    0KB sq=    0B f=23/23'), { clockSec: 0.26, dropped: 25, avSec: NaN });
    assert.deepEqual(parseStatusLine('   1.05 A-V: -0.966 fd=  25 aq=    2KB vq=    0KB sq=    0B f=23/23'), { clockSec: 1.05, dropped: 25, avSec: -0.966 });
    assert.equal(parseStatusLine('[h264 @ 0x55] error while decoding MB 3 4'), undefined);
    // A demuxer's warning begun on another thread, its context written just before the status line.
    assert.deepEqual(parseStatusLine('[matroska,webm @ 0x7f78a8000c80]     nan    :  0.000 fd=   0 aq=    0KB vq=    0KB sq=    0B f=0/0   '), { clockSec: NaN, dropped: 0, avSec: NaN });
    assert.deepEqual(parseStatusLine('[matroska,webm @ 0x7f78a8000c80]    2.04 A-V:  0.010 fd=   1 aq=    3KB vq=    0KB sq=    0B f=0/0'), { clockSec: 2.04, dropped: 1, avSec: 0.01 });
  });

  test('starting until it speaks; live while lines come; stalled when they stop; lagging after a pause', () => {
    const w = new PlayerWatchdog(0);
    assert.equal(w.check(0), 'starting');
    // Clock 0.00 s at 1000 ms, then steady: every 30 ms a line, the clock advancing with us.
    for (let t = 1000; t <= 2000; t += 30) w.status((t - 1000) / 1000, 0, t);
    assert.equal(w.check(2000), 'live');
    assert.ok(w.lagMs <= 10);
    // In its first seconds a player may go quiet while it opens its sound device.
    assert.equal(w.check(2000 + 400), 'live', 'opening the sound device: not a stall yet');
    assert.equal(w.check(2000 + PLAYER_STARTUP_STALL_MS + 1), 'stalled');
    for (let t = 2000; t <= 4000; t += 30) w.status((t - 1000) / 1000, 0, t);
    assert.equal(w.check(4000 + PLAYER_STALL_MS + 1), 'stalled', 'paused: the lines stop');
    // Resumed after 6 s: its clock went on from where it stopped.
    w.status(3.0, 0, 10_000);
    assert.equal(w.check(8000), 'lagging');
    assert.ok(w.lagMs > PLAYER_LAG_MS);
  });

  test('writes left unread for PLAYER_STALL_MS are a stall too (after the start-up grace), until it drains', () => {
    const starting = new PlayerWatchdog(0);
    starting.blocked(0);
    assert.equal(starting.check(PLAYER_STARTUP_GRACE_MS), 'starting', 'still opening its window');
    assert.equal(starting.check(PLAYER_STARTUP_GRACE_MS + 1), 'stalled');
    const w = new PlayerWatchdog(-PLAYER_STARTUP_GRACE_MS);
    w.blocked(100);
    w.blocked(200); // the first time counts
    assert.equal(w.check(100 + PLAYER_STALL_MS), 'starting');
    assert.equal(w.check(101 + PLAYER_STALL_MS), 'stalled');
    w.drained(900);
    assert.equal(w.check(1000), 'starting');
  });
});

/**
 * Stands in for ffplay's ChildProcess: the test decides what it prints (status lines), whether it
 * reads what it is given, and when it dies.
 */
class FakePlayer extends EventEmitter {
  static count = 0;
  pid = 5000 + FakePlayer.count++;
  stdout = null;
  stderr = new PassThrough();
  received: Buffer[] = [];
  reading = true;
  private pending: (() => void)[] = [];
  stdin = new Writable({
    highWaterMark: 1024,
    write: (chunk: Buffer, _enc, done) => {
      this.received.push(chunk);
      if (this.reading) done();
      else this.pending.push(done);
    },
  });
  killed = false;
  constructor() {
    super();
    setImmediate(() => this.emit('spawn'));
  }
  /** One status line as ffplay prints it, with its clock at `clockSec` (and A-V `avSec` with a sound track). */
  say(clockSec: number, dropped = 0, avSec?: number): void {
    const av = avSec === undefined ? 'M-V:  0.001' : `A-V: ${avSec.toFixed(3).padStart(6)}`;
    this.stderr.write(`${clockSec.toFixed(2).padStart(7)} ${av} fd=${String(dropped).padStart(4)} aq=    0KB vq=    3KB sq=    0B f=0/0   \r`);
  }
  read(): void {
    this.reading = true;
    for (const done of this.pending.splice(0)) done();
  }
  kill(): boolean {
    this.killed = true;
    setImmediate(() => {
      this.emit('exit', null, 'SIGTERM');
      this.stderr.end();
      setImmediate(() => this.emit('close', null, 'SIGTERM'));
    });
    return true;
  }
}

const tick = () => new Promise((r) => setImmediate(r));
const au = (idr: boolean, bytes = 100) =>
  Buffer.concat([
    Buffer.from('000000016742c01e8c8d40a0fd00f0884535000000016' + '8ce3c80', 'hex'),
    Buffer.from([0, 0, 0, 1, idr ? 0x65 : 0x41]),
    Buffer.alloc(bytes, 0x55),
  ]);
const jpeg = Buffer.from('ffd8ffdb0002ffc0000b0800f0014001011100ffda0008010100003f00aaffd9', 'hex');

/** An FfplaySink on fake players and a fake clock, its checks driven by the test. */
function harness(sound = false) {
  const players: FakePlayer[] = [];
  const spawn = (() => {
    const p = new FakePlayer();
    players.push(p);
    return p;
  }) as unknown as SpawnFn;
  let t = 0;
  const logs: string[] = [];
  const exits: unknown[] = [];
  let keyframeAsks = 0;
  const sink = new FfplaySink({
    ffplayPath: 'ffplay', title: 't', budgetMs: () => 100, log: (l) => logs.push(l), onExit: (c) => exits.push(c),
    onNeedKeyframe: () => keyframeAsks++, spawn, now: () => t, timer: false, sound,
  });
  let ts = 0;
  const frame = (keyframe: boolean, codec: 'h264' | 'mjpeg' = 'h264'): SinkFrame =>
    ({ codec, data: codec === 'h264' ? au(keyframe) : jpeg, keyframe: codec === 'mjpeg' || keyframe, timestamp: (ts += 3000), latencyMs: 20 });
  /** Time passes in PLAYER_CHECK_MS steps, the player saying its clock as it goes when `speaking`. */
  const run = async (ms: number, speaking: (p: FakePlayer) => number | undefined) => {
    for (let end = t + ms; t < end; ) {
      t += PLAYER_CHECK_MS;
      const p = players.at(-1)!;
      const clock = speaking(p);
      if (clock !== undefined) p.say(clock);
      await tick();
      sink.tick(t);
    }
  };
  return { sink, players, logs, exits, frame, run, now: () => t, keyframeAsks: () => keyframeAsks, lastTs: () => ts };
}

describe('FfplaySink (fake players, fake clock)', () => {
  test('silent for PLAYER_STALL_MS: behind, frames held back; speaking again: a new player from the last keyframe', async () => {
    const h = harness();
    await tick();
    h.sink.write(h.frame(true), h.now());
    h.sink.write(h.frame(false), h.now());
    let clock = 0;
    await h.run(PLAYER_STARTUP_GRACE_MS, () => (clock += PLAYER_CHECK_MS / 1000));
    assert.equal(h.sink.state, 'live');
    await h.run(PLAYER_STALL_MS + 2 * PLAYER_CHECK_MS, () => undefined); // SIGSTOP
    assert.equal(h.sink.state, 'behind');
    assert.match(h.logs.join('\n'), /player fell behind \(nothing read or shown for \d+ ms: paused or stalled\)/);
    h.sink.write(h.frame(false), h.now());
    assert.equal(h.sink.framesHeldBack, 1);
    assert.equal(h.players.length, 1, 'no restart while it stays silent');
    // SIGCONT: its clock ran on meanwhile.
    await h.run(PLAYER_RESTART_MIN_MS, (p) => (p === h.players[0] ? (clock = h.now() / 1000) : 0));
    assert.equal(h.sink.restarts, 1);
    assert.equal(h.sink.state, 'live');
    assert.equal(h.players.length, 2);
    assert.ok(h.players[0].killed, 'the old player is ended');
    const fed = Buffer.concat(h.players[1].received);
    assert.deepEqual(fed.subarray(0, 4), Buffer.from('1a45dfa3', 'hex'), 'Matroska from the start');
    assert.ok(fed.includes(au(true)) === false, 'length-prefixed, not Annex B');
    assert.ok(fed.length > 3 * 100, 'the keyframe and both frames after it');
    assert.equal(h.keyframeAsks(), 0, 'it had a keyframe to start from');
    assert.deepEqual(h.exits, [], 'a restart is not the player ending');
    await h.sink.close();
  });

  test("paused: silent, then speaking with its clock where it stopped (lagging): restarted; a lag alone also, at most every PLAYER_RESTART_MIN_MS", async () => {
    const h = harness();
    await tick();
    h.sink.write(h.frame(true), h.now());
    await h.run(PLAYER_RESTART_MIN_MS, (p) => h.now() / 1000); // lived past the restart limit
    await h.run(3000, () => undefined); // paused: no lines
    const frozen = h.now() / 1000 - 3;
    assert.equal(h.sink.state, 'behind');
    await h.run(100, () => frozen);
    assert.equal(h.sink.restarts, 1, 'restarted as soon as it spoke');
    // The new player runs slow: its clock at half speed. A restart, but not before the limit.
    const started = h.now();
    await h.run(PLAYER_RESTART_MIN_MS + 500, () => (h.now() - started) / 2000);
    assert.equal(h.sink.restarts, 2);
    assert.ok(h.logs.some((l) => /player restarted live: it was \d+ ms behind/.test(l)), h.logs.join('\n'));
    assert.equal(h.logs.filter((l) => /restarted/.test(l)).length, 2, 'no line per status line');
    await h.sink.close();
  });

  test('the first player may take its time to open its window; unread writes count after PLAYER_STARTUP_GRACE_MS', async () => {
    const h = harness();
    await tick();
    h.players[0].reading = false;
    h.sink.write(h.frame(true, 'h264'), h.now());
    for (let i = 0; i < 20; i++) h.sink.write(h.frame(false), h.now());
    await h.run(PLAYER_STARTUP_GRACE_MS - 100, () => undefined);
    assert.equal(h.sink.state, 'live', 'still starting');
    await h.run(PLAYER_STALL_MS + 200, () => undefined);
    assert.equal(h.sink.state, 'behind');
    h.players[0].read();
    await h.run(3 * PLAYER_CHECK_MS, () => undefined);
    assert.equal(h.sink.restarts, 1, 'reads again: restarted');
    await h.sink.close();
  });

  test('sound that fell behind its picture in the player (its A-V) is drained: none given for as long as it lags', async () => {
    const h = harness(true);
    await tick();
    const sound = (): ReceivedAudio => ({ data: Buffer.from([0xf8, 1, 2]), ssrc: 1, timestamp: 0, videoTimestamp: h.lastTs(), concealed: false });
    let steps = 0;
    const step = async (avSec: number) => {
      // Frames 33.3 ms apart at the pace of the 50 ms steps: one, then two.
      const frames = 1 + (steps++ % 2);
      for (let i = 0; i < frames; i++) h.sink.write(h.frame(h.lastTs() === 0), h.now());
      h.sink.writeAudio(sound(), h.now());
      await h.run(PLAYER_CHECK_MS, (p) => {
        p.say(h.now() / 1000, 0, avSec);
        return undefined;
      });
    };
    for (let i = 0; i < 5; i++) await step(0.01);
    const played = h.sink.soundPlayed;
    assert.ok(played >= 3, `${played} sound packets played while in step`);
    await step(-0.5);
    await step(-0.5); // two lines in a row: drained from here, for 500 ms
    const drainedAt = h.now();
    while (h.now() < drainedAt + 450) await step(-0.5);
    assert.ok(h.sink.soundPlayed <= played + 2, `${h.sink.soundPlayed - played} played while behind`);
    // A-V still reads the old lag until the device has played new sound: no second drain.
    while (h.now() < drainedAt + 600) await step(-0.5);
    assert.equal(h.sink.soundDrains, 1);
    while (h.now() < drainedAt + 800) await step(0.01);
    assert.ok(h.sink.soundPlayed >= played + 4, `${h.sink.soundPlayed - played} given again once drained`);
    assert.equal(h.sink.soundDrains, 1);
    await h.sink.close();
  });

  test('a mark for sound that never came is not played live: its time has passed, it would only put the sound behind', async () => {
    const h = harness(true);
    await tick();
    const sound = (concealed: boolean): ReceivedAudio => ({ data: Buffer.from(concealed ? [0xf8] : [0xf8, 1, 2]), ssrc: 1, timestamp: 0, videoTimestamp: h.lastTs(), concealed });
    for (let i = 0; i < 6; i++) {
      h.sink.write(h.frame(h.lastTs() === 0), h.now());
      h.sink.writeAudio(sound(false), h.now());
      await h.run(PLAYER_CHECK_MS, (p) => {
        p.say(h.now() / 1000, 0, 0.01);
        return undefined;
      });
    }
    const [played, notPlayed] = [h.sink.soundPlayed, h.sink.soundNotPlayed];
    assert.ok(played >= 3);
    for (let i = 0; i < 5; i++) h.sink.writeAudio(sound(true), h.now());
    h.sink.writeAudio(sound(false), h.now());
    assert.deepEqual([h.sink.soundPlayed - played, h.sink.soundNotPlayed - notPlayed], [1, 5]);
    await h.sink.close();
  });

  test('--output - (live): marks for sound that never came are left out too, real sound is written', async () => {
    // FileSink('-') writes to process.stdout: taken over for the test, given back after.
    const written: Buffer[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: Buffer) => (written.push(Buffer.from(chunk)), true)) as typeof process.stdout.write;
    try {
      const sink = new FileSink('-', { budgetMs: () => 100, audio: true });
      let ts = 0;
      let t = 0;
      const sound = (concealed: boolean): ReceivedAudio => ({ data: Buffer.from(concealed ? [0xf8] : [0xf8, 1, 2]), ssrc: 1, timestamp: 0, videoTimestamp: ts, concealed });
      for (let i = 0; i < 10; i++) {
        sink.write({ codec: 'h264', data: au(i === 0), keyframe: i === 0, timestamp: (ts += 3000), latencyMs: 20 }, (t += 33));
        sink.writeAudio(sound(false), t);
      }
      const before = sink.audioNotWritten;
      for (let i = 0; i < 4; i++) sink.writeAudio(sound(true), t);
      sink.writeAudio(sound(false), t);
      assert.equal(sink.audioNotWritten - before, 4, 'the four marks, not the packet after them');
      assert.ok(Buffer.concat(written).subarray(0, 4).equals(Buffer.from('1a45dfa3', 'hex')), 'Matroska on stdout');
    } finally {
      process.stdout.write = write;
    }
  });

  test('a recording whose sound came before its clock mapping waits for it (AUDIO_PLACE_WAIT_MS), and keeps a sound track', async () => {
    // An RTSP publisher's sender reports reach a viewer up to a second after its first sound: the
    // file must not start without a sound track at AUDIO_WAIT_MS for want of one (CI found this).
    const record = async (heard: boolean) => {
      const path = join(mkdtempSync(join(tmpdir(), 'udpcast-sink-')), 'x.mkv');
      const sink = new FileSink(path, { audio: true, soundHeard: () => heard });
      let ts = 0;
      let t = 0;
      for (let i = 0; i < 20; i++) sink.write({ codec: 'h264', data: au(i === 0), keyframe: i === 0, timestamp: (ts += 3000), latencyMs: 20 }, (t += 33));
      // 660 ms after the first frame: past AUDIO_WAIT_MS, within AUDIO_PLACE_WAIT_MS.
      sink.writeAudio({ data: Buffer.from([0xf8, 1, 2]), ssrc: 1, timestamp: 0, videoTimestamp: ts, concealed: false }, t);
      await sink.close();
      const bytes = readFileSync(path);
      rmSync(path, { force: true });
      return { opusTrack: bytes.includes(Buffer.from('A_OPUS')), notWritten: sink.audioNotWritten };
    };
    assert.deepEqual(await record(true), { opusTrack: true, notWritten: 0 }, 'sound heard: the file waits and takes it');
    assert.equal((await record(false)).opusTrack, false, 'no sound heard: the file starts at AUDIO_WAIT_MS without');
  });

  test("watch's own event loop held up: the player's silence is excused", async () => {
    const h = harness();
    await tick();
    h.sink.write(h.frame(true), h.now());
    await h.run(300, () => h.now() / 1000);
    h.sink.tick(h.now() + 1000); // the timer fired a second late
    assert.equal(h.sink.state, 'live');
    await h.sink.close();
  });

  test('behind, then watch itself held up while the player stays paused: the excuse is not taken for the player speaking again', async () => {
    const h = harness();
    await tick();
    h.sink.write(h.frame(true), h.now());
    await h.run(PLAYER_STARTUP_GRACE_MS, () => h.now() / 1000);
    await h.run(PLAYER_STALL_MS + 2 * PLAYER_CHECK_MS, () => undefined); // paused
    assert.equal(h.sink.state, 'behind');
    h.sink.tick(h.now() + 1000); // the timer fired a second late, the player still silent
    await h.run(PLAYER_STALL_MS, () => undefined);
    assert.equal(h.sink.restarts, 0, 'no restart while it stays paused');
    assert.equal(h.sink.state, 'behind');
    await h.run(100, () => h.now() / 1000); // resumed
    assert.equal(h.sink.restarts, 1);
    await h.sink.close();
  });

  test('a sharer restarted with another codec: a new player at once, whatever the limit', async () => {
    const h = harness();
    await tick();
    h.sink.write(h.frame(true, 'h264'), h.now());
    h.sink.write(h.frame(true, 'mjpeg'), h.now());
    assert.equal(h.sink.restarts, 1);
    assert.ok(Buffer.concat(h.players[1].received).includes(Buffer.from('V_MJPEG')));
    await h.sink.close();
  });

  test('restarted with nothing kept (no keyframe yet): a keyframe is asked for', async () => {
    const h = harness();
    await tick();
    h.sink.write(h.frame(false), h.now()); // joined mid-GOP, nothing usable yet
    await h.run(Math.max(PLAYER_RESTART_MIN_MS, PLAYER_STARTUP_GRACE_MS), () => h.now() / 1000);
    await h.run(PLAYER_STALL_MS + 100, () => undefined);
    await h.run(100, () => h.now() / 1000);
    assert.equal(h.sink.restarts, 1);
    assert.equal(h.keyframeAsks(), 1);
    await h.sink.close();
  });

  test('a player that ends by itself is described in words (issue 12: not "exited with code 123")', async () => {
    const cases: Array<[stderr: string, code: number | null, signal: NodeJS.Signals | null, expected: PlayerExit]> = [
      ['', 0, null, { line: 'the player window was closed', closed: true }],
      ['X connection to :9 broken (explicit kill or server shutdown).', 1, null,
        { line: 'the player window was closed by force (its connection to the display was cut)', closed: true }],
      ['XIO:  fatal IO error 11 (Resource temporarily unavailable) on X server ":9"', 1, null,
        { line: 'the player window was closed by force (its connection to the display was cut)', closed: true }],
      ['X Error of failed request:  BadDrawable (invalid Pixmap or Window parameter)\n  Major opcode of failed request:  14 (X_GetGeometry)\n' +
        '  Resource id in failed request:  0x200008\n  Serial number of failed request:  409\n  Current serial number in output stream:  409', 1, null,
        { line: 'the player window was closed by force (the window was destroyed)', closed: true }],
      ['', null, 'SIGKILL', { line: 'the player (ffplay) was killed (SIGKILL)', closed: false }],
      ['', FFPLAY_SIGNAL_EXIT, null, { line: 'the player (ffplay) was killed (SIGTERM or SIGINT)', closed: false }],
      ['', 1, null, { line: 'the player (ffplay) failed: it exited with code 1', closed: false }],
    ];
    for (const [stderr, code, signal, expected] of cases) {
      const h = harness();
      await tick();
      const p = h.players[0];
      if (stderr) p.stderr.write(stderr + '\n');
      await tick();
      p.emit('exit', code, signal);
      p.stderr.end();
      await tick();
      p.emit('close', code, signal);
      await waitFor(() => h.exits.length > 0, 2000, 'the exit report');
      assert.deepEqual(h.exits, [expected]);
      assert.deepEqual(h.logs.filter((l) => l.startsWith('ffplay:')), [], 'the X error itself is not echoed: the description says it');
      await h.sink.close();
    }
  });

  test('close() while a restarted player is still dying waits for both', async () => {
    const h = harness();
    await tick();
    h.sink.write(h.frame(true, 'h264'), h.now());
    h.sink.write(h.frame(true, 'mjpeg'), h.now());
    await h.sink.close();
    assert.ok(h.players.every((p) => p.killed));
  });
});

/**
 * Issue 15: sound this machine plays reaches the viewer. A private PulseAudio server (its own
 * runtime directory and socket, a null sink, no D-Bus, no shared memory, owned and killed by this
 * test) stands in for a desktop; FFmpeg plays a known pattern into the null sink, and
 * `share --source test --audio SINK.monitor` → its relay → `watch --output rec.mkv` must carry
 * that pattern: a 660 Hz tone, a short beep (0.1 s) and a long one (0.3 s) in turn, an onset
 * every 0.6 s. The recording is judged sample by sample (Goertzel at 660 Hz and at udpcast's own
 * 1 kHz test beep), so "a track exists" is not enough.
 *
 * The server (bench/ear.ts pulseCommand) runs as root too, as in CI.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { udpcast, start, killAll, exited, freePort, waitFor, type Running } from './helpers/cli.ts';
import { skipUnless, which } from './helpers/tools.ts';
import { pulseCommand } from '../bench/ear.ts';

const SINK = 'udpcast_tone';
const MONITOR = `${SINK}.monitor`;
const RATE = 48000;
const TONE_HZ = 660;
/** The played pattern: per PERIOD_S, the tone on during [0, SHORT_S) and [HALF_S, HALF_S + LONG_S). */
const PERIOD_S = 1.2;
const HALF_S = PERIOD_S / 2;
const SHORT_S = 0.1;
const LONG_S = 0.3;
const AMPLITUDE = 0.5;
/** The recording's first second, left out of the judging (see below). */
const JOIN_S = 1;

/** Why this file cannot run here, printed; false when it can. */
function skipReason(): string | false {
  const tools = skipUnless('ffmpeg', 'ffprobe');
  if (tools) return tools;
  let reason: string | undefined;
  if (!which('pulseaudio')) reason = 'needs pulseaudio on PATH (CI installs it: apt-get install --no-install-recommends pulseaudio)';
  else {
    const devices = spawnSync('ffmpeg', ['-hide_banner', '-devices'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
    if (!/^\s*D\S*\s+pulse\s/m.test(devices)) reason = "needs an FFmpeg with PulseAudio input (-f pulse); this one has none";
  }
  if (reason) console.log(`# skipped: ${reason}`);
  return reason ?? false;
}
const skip = skipReason();

const dir = mkdtempSync(join(tmpdir(), 'udpcast-pulse-'));
/** A private server (bench/ear.ts) with the null sink SINK; its configuration is written in `dir`. */
const server = pulseCommand(dir, SINK);
/** What every client of the private server is given: PULSE_SERVER reaches FFmpeg's pulse input. */
const clientEnv = { PULSE_SERVER: `unix:${server.socket}` };
let pulse: Running | undefined;

/** Ends `r` by its pid (SIGTERM, then SIGKILL) and waits for it. */
async function end(r: Running | undefined): Promise<void> {
  if (!r || r.child.exitCode !== null || r.child.signalCode !== null) return;
  process.kill(r.pid, 'SIGTERM');
  await exited(r, 3000).catch(() => {
    process.kill(r.pid, 'SIGKILL');
    return exited(r, 3000);
  });
}

before(async () => {
  if (skip) return;
  pulse = start('pulseaudio', server.args, server.serverEnv);
  await waitFor(() => existsSync(server.socket) || pulse!.child.exitCode !== null, 10_000, 'the private PulseAudio server');
  assert.ok(existsSync(server.socket), `pulseaudio exited (${pulse.child.exitCode}) before listening:\n${pulse.stderrText()}`);
});

after(async () => {
  await end(pulse);
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

test('share --audio list: the null sink\'s monitor, as what this machine plays', { skip, timeout: 30_000 }, async () => {
  const r = udpcast(['share', '--audio', 'list'], clientEnv);
  const { code } = await exited(r, 20_000);
  const out = Buffer.concat(r.stdout).toString();
  assert.equal(code, 0, r.stderrText());
  const line = out.split('\n').find((l) => l.includes(`--audio ${MONITOR}`));
  assert.ok(line, `the monitor is listed:\n${out}`);
  assert.match(line, /what this machine plays \(the default output, [^)]+\): what --audio alone captures/);
});

test('sound played into PulseAudio arrives at the viewer: the tone, its beeps and their rhythm', { skip, timeout: 90_000 }, async () => {
  // The pattern plays (and keeps playing) into the null sink; its monitor is what the sharer captures.
  const on = `lt(mod(t,${PERIOD_S}),${SHORT_S})+between(mod(t,${PERIOD_S}),${HALF_S},${HALF_S + LONG_S})`;
  const player = start(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-f', 'lavfi', '-i', `aevalsrc=exprs='if(${on},${AMPLITUDE}*sin(2*PI*${TONE_HZ}*t),0)':s=${RATE}:c=stereo`, '-t', '60', '-f', 'pulse', '-device', SINK, 'udpcast test tone'],
    clientEnv,
  );
  const port = await freePort();
  const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '320x240', '--audio', MONITOR, '--duration', '20', '--no-dashboard'], clientEnv);
  const file = join(dir, 'rec.mkv');
  try {
    await waitFor(() => share.stderrText().includes(`sound: from ${MONITOR}`) || share.child.exitCode !== null, 10_000, 'the sharer to say what sound it sends');
    assert.equal(share.child.exitCode, null, `the sharer ended early:\n${share.stderrText()}`);
    assert.equal(player.child.exitCode, null, `the tone stopped:\n${player.stderrText()}`);
    const watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '7', '--output', file]);
    assert.equal((await exited(watch, 25_000)).code, 0, watch.stderrText());
  } finally {
    await end(share);
    await end(player);
  }

  const samples = decodeMono(file);
  const seconds = samples.length / RATE;
  assert.ok(seconds >= 4, `${seconds.toFixed(2)} s of sound recorded`);
  const { beeps, quietMax } = findBeeps(samples);
  console.log(`# recording: beeps (start s, length s, 660 Hz, 1 kHz) ${beeps.map((b) => `(${b.start.toFixed(3)}, ${b.length.toFixed(3)}, ${b.level.toFixed(2)}, ${b.other.toFixed(3)})`).join(' ')}; between beeps at most ${quietMax.toFixed(4)} RMS`);
  // Whole beeps only: one cut by the recording's end says nothing of its length. The first second
  // is the viewer's join, judged elsewhere (audio.test.ts); here its first beep has come up to
  // 45 ms late and short while every later one is exact.
  const whole = beeps.filter((b) => b.start > JOIN_S && b.start + b.length < seconds - 0.1);
  assert.ok(whole.length >= 5, `${whole.length} whole beeps in ${seconds.toFixed(1)} s`);

  // The tone itself: loud at 660 Hz, far above udpcast's own test beep (1 kHz); silence between beeps.
  for (const b of whole) {
    assert.ok(b.level > 0.1, `the beep at ${b.start.toFixed(3)} s has 660 Hz at ${b.level.toFixed(3)}`);
    assert.ok(b.other < b.level / 5, `the beep at ${b.start.toFixed(3)} s has 1 kHz at ${b.other.toFixed(3)}, 660 Hz at ${b.level.toFixed(3)}: not the tone played`);
  }
  assert.ok(quietMax < 0.03, `between beeps the sound reaches ${quietMax.toFixed(3)} RMS`);

  // The rhythm: an onset every 0.6 s (each within 30 ms, their mean within 10 ms), short and long
  // beeps in turn.
  for (let i = 1; i < whole.length; i++) {
    const gap = whole[i].start - whole[i - 1].start;
    assert.ok(Math.abs(gap - HALF_S) <= 0.03, `beeps ${i - 1} and ${i} start ${gap.toFixed(3)} s apart, not ${HALF_S}`);
  }
  const mean = (whole.at(-1)!.start - whole[0].start) / (whole.length - 1);
  assert.ok(Math.abs(mean - HALF_S) <= 0.01, `beeps start every ${mean.toFixed(4)} s on average, not ${HALF_S}`);
  const kinds = whole.map((b) => (Math.abs(b.length - SHORT_S) <= 0.05 ? 'short' : Math.abs(b.length - LONG_S) <= 0.05 ? 'long' : `${b.length.toFixed(3)} s`));
  for (let i = 0; i < kinds.length; i++) {
    assert.ok(kinds[i] === 'short' || kinds[i] === 'long', `beep ${i} lasts ${kinds[i]}`);
    if (i > 0) assert.notEqual(kinds[i], kinds[i - 1], `beeps ${i - 1} and ${i} are both ${kinds[i]}`);
  }
});

/**
 * The recording's first sound track as mono 32-bit float samples at RATE, decoded by FFmpeg's own
 * Opus decoder: ffplay's, so what a viewer hears. (It garbled stereo coded with in-band FEC, 10 ms
 * of tone then 10 ms of nothing; share no longer asks for FEC: see encode/ffmpeg-args.ts.)
 */
function decodeMono(file: string): Float32Array {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-map', '0:a:0', '-ac', '1', '-ar', String(RATE), '-f', 'f32le', '-'], { maxBuffer: 256 * 1024 * 1024, timeout: 30_000 });
  assert.equal(r.status, 0, `decoding the sound track: ${r.stderr?.toString()}`);
  const bytes = Buffer.from(r.stdout);
  const out = new Float32Array(bytes.length >> 2);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

/** Amplitude of `hz` in `len` samples from `from` (Goertzel over a Hann window, scaled to a sine's peak). */
function toneAmplitude(x: Float32Array, from: number, len: number, hz: number): number {
  const k = 2 * Math.cos((2 * Math.PI * hz) / RATE);
  let s1 = 0;
  let s2 = 0;
  let gain = 0;
  for (let n = 0; n < len; n++) {
    const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / (len - 1));
    gain += w;
    const s0 = x[from + n] * w + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - k * s1 * s2;
  return (2 * Math.sqrt(Math.max(power, 0))) / gain;
}

interface Beep {
  /** Seconds from the track's start to the beep's start, and its length. */
  start: number;
  length: number;
  /** The 660 Hz amplitude in its loudest window, and the 1 kHz amplitude in that window. */
  level: number;
  other: number;
}

/**
 * Where the 660 Hz tone sounds, in 20 ms windows every 5 ms (onsets to a few ms), and the loudest
 * RMS of the windows wholly outside every beep.
 */
function findBeeps(x: Float32Array): { beeps: Beep[]; quietMax: number } {
  const win = RATE / 50;
  const hop = RATE / 200;
  const threshold = AMPLITUDE / 8;
  const frames: Array<{ t: number; tone: number; other: number; rms: number }> = [];
  for (let from = 0; from + win <= x.length; from += hop) {
    let sum = 0;
    for (let n = from; n < from + win; n++) sum += x[n] * x[n];
    frames.push({ t: (from + win / 2) / RATE, tone: toneAmplitude(x, from, win, TONE_HZ), other: toneAmplitude(x, from, win, 1000), rms: Math.sqrt(sum / win) });
  }
  // Window centres mark a beep's start and end: a window centred on an edge holds half the tone.
  const spans: Array<{ start: number; end: number; level: number; other: number }> = [];
  let open: (typeof spans)[number] | undefined;
  for (const f of frames) {
    if (f.tone >= threshold) {
      if (!open) spans.push((open = { start: f.t, end: f.t, level: 0, other: 0 }));
      open.end = f.t;
      if (f.tone > open.level) Object.assign(open, { level: f.tone, other: f.other });
    } else open = undefined;
  }
  const near = (t: number) => spans.some((b) => t > b.start - 0.03 && t < b.end + 0.03);
  // A beep the recording's end cuts to a few ms is too short to find, and not quiet: the last
  // windows say nothing of the silence between beeps.
  const end = x.length / RATE;
  const quietMax = Math.max(0, ...frames.filter((f) => !near(f.t) && f.t < end - 0.05).map((f) => f.rms));
  return { beeps: spans.map((b) => ({ start: b.start, length: b.end - b.start, level: b.level, other: b.other })), quietMax };
}

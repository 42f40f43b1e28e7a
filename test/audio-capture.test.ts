/**
 * `share --audio` (issue 15) on the FFmpeg side: what the flag means for each source, the input
 * and output arguments it adds, and with real FFmpeg that the test beep and the test pattern's
 * flash fall on the same instants, with Opus coming out of its pipe a packet at a time.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIO_FRAME_MS_DEFAULT } from '../src/defaults.ts';
import { AUDIO_TEST_BEEP_S, audioInputArgs, parseAudio } from '../src/capture/audio.ts';
import { audioFd, buildShareArgs, type EncodeOptions } from '../src/encode/ffmpeg-args.ts';
import { OggOpusReader } from '../src/encode/ogg.ts';
import { UsageError } from '../src/util/errors.ts';
import { skipUnless } from './helpers/tools.ts';
import { beepsOnFlashes } from './helpers/media.ts';
import { sleep } from './helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-audio-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const h264: EncodeOptions = { codec: 'h264', bitrateKbps: 500, fps: 30, gop: 60, size: { width: 320, height: 240 } };
const withTest: EncodeOptions = { ...h264, audio: { source: { kind: 'test' }, bitrateKbps: 64 } };

describe('--audio: what it captures', () => {
  test('off unless asked; no value means the source\'s own sound', () => {
    assert.equal(parseAudio(undefined, 'screen'), undefined);
    assert.equal(parseAudio(false, 'screen'), undefined);
    assert.deepEqual(parseAudio(true, 'test'), { kind: 'test' });
    assert.deepEqual(parseAudio(true, 'clip.mp4'), { kind: 'file' });
    assert.deepEqual(parseAudio(true, 'screen'), { kind: 'device', name: 'default' });
    assert.deepEqual(parseAudio('test', 'screen'), { kind: 'test' });
    assert.deepEqual(parseAudio(' alsa:hw:1 ', 'screen'), { kind: 'device', name: 'alsa:hw:1' });
    assert.throws(() => parseAudio('file', 'screen'), UsageError);
    // `--audio list` prints the sources instead of sharing (apps/main.ts, before any parsing here).
    assert.throws(() => parseAudio('list', 'screen'), (e: unknown) => e instanceof UsageError && /--audio list prints what --audio can capture and exits/.test(e.message));
  });

  test('devices per platform: PulseAudio (the desktop: the default output\'s monitor), ALSA, DirectShow, AVFoundation', () => {
    assert.deepEqual(audioInputArgs({ kind: 'device', name: 'default' }, 'linux'), ['-f', 'pulse', '-fragment_size', '1920', '-i', '@DEFAULT_MONITOR@']);
    assert.deepEqual(audioInputArgs({ kind: 'device', name: 'mic' }, 'linux'), ['-f', 'pulse', '-fragment_size', '1920', '-i', 'mic']);
    assert.deepEqual(audioInputArgs({ kind: 'device', name: 'alsa:hw:0' }, 'linux'), ['-f', 'alsa', '-i', 'hw:0']);
    assert.deepEqual(audioInputArgs({ kind: 'device', name: 'Stereo Mix (Realtek)' }, 'win32'), ['-f', 'dshow', '-i', 'audio=Stereo Mix (Realtek)']);
    assert.deepEqual(audioInputArgs({ kind: 'device', name: '1' }, 'darwin'), ['-f', 'avfoundation', '-i', ':1']);
    // Neither has a way to name "what the machine plays": the message says how to get one.
    assert.throws(() => audioInputArgs({ kind: 'device', name: 'default' }, 'win32'), /Stereo Mix/);
    assert.throws(() => audioInputArgs({ kind: 'device', name: 'default' }, 'darwin'), /BlackHole/);
    assert.deepEqual(audioInputArgs({ kind: 'file' }), [], "a file's sound comes with its picture");
  });

  test('the argv: a second input, the flash on the pattern, Opus in Ogg pages of one packet on the pipe after the layers\'', () => {
    const one = buildShareArgs({ source: 'test', fps: 30 }, withTest);
    assert.ok(one.includes(`aevalsrc=exprs='if(lt(mod(t,1),${AUDIO_TEST_BEEP_S}),0.5*sin(2*PI*1000*t),0)':s=48000:c=mono:n=480`));
    assert.ok(one.some((a) => a.includes(`drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,1),${AUDIO_TEST_BEEP_S})'`)));
    const tail = one.slice(one.lastIndexOf('-map'));
    assert.deepEqual(tail.slice(0, 4), ['-map', '1:a:0', '-vn', '-sn']);
    assert.deepEqual(tail.slice(-7), ['-f', 'opus', '-page_duration', String(AUDIO_FRAME_MS_DEFAULT * 1000), '-flush_packets', '1', `pipe:${audioFd(1)}`]);
    // 10 ms: CELT only (lowdelay); 20 ms: the audio application; no in-band FEC (see ffmpeg-args.ts).
    const mode = (frameMs: number) => {
      const a = buildShareArgs({ source: 'test', fps: 30 }, { ...withTest, audio: { ...withTest.audio!, frameMs } });
      return [a[a.indexOf('-application') + 1], a[a.indexOf('-frame_duration') + 1], a.includes('-fec'), a[a.indexOf('-page_duration') + 1]];
    };
    assert.deepEqual(mode(10), ['lowdelay', '10', false, '10000']);
    assert.deepEqual(mode(20), ['audio', '20', false, '20000']);
    assert.equal(audioFd(1), 3);
    const three = buildShareArgs({ source: 'test', fps: 30 }, { ...withTest, size: { width: 1280, height: 720 }, layers: 3 });
    assert.equal(three.at(-1), 'pipe:5', 'after layers on 1, 3 and 4');
    assert.equal(audioFd(3), 5);
    const file = buildShareArgs({ source: '/tmp/clip.mp4', fps: 30 }, { ...h264, audio: { source: { kind: 'file' }, bitrateKbps: 64 } });
    assert.deepEqual(file.slice(file.lastIndexOf('-map'), file.lastIndexOf('-map') + 2), ['-map', '0:a:0']);
    assert.equal(file.filter((a) => a === '-i').length, 1, 'one input: the file');
    // Without --audio nothing changes: no flash, no second output.
    const plain = buildShareArgs({ source: 'test', fps: 30 }, h264);
    assert.ok(!plain.some((a) => a.includes('drawbox') || a.includes('opus')));
  });
});

test('real FFmpeg: the beep sounds on the flash (within 45 ms), and Opus leaves a packet at a time', { skip: skipUnless('ffmpeg', 'ffprobe') }, async () => {
  const args = buildShareArgs({ source: 'test', fps: 30 }, withTest);
  const videoFile = join(dir, 'v.flv');
  const v = openSync(videoFile, 'w');
  const child = spawn('ffmpeg', args, { stdio: ['ignore', v, 'pipe', 'pipe'] });
  const reader = new OggOpusReader();
  const arrivals: Array<{ at: number; endSample: number }> = [];
  const started = performance.now();
  const audio: Buffer[] = [];
  child.stdio[3]!.on('data', (c: Buffer) => {
    audio.push(Buffer.from(c));
    for (const p of reader.push(Buffer.from(c))) arrivals.push({ at: performance.now() - started, endSample: p.endSample });
  });
  try {
    await sleep(3500);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    closeSync(v);
  }
  assert.ok(reader.head, 'an OpusHead');
  assert.ok(arrivals.length >= 100, `${arrivals.length} packets in 3.5 s`);
  // One page a packet: no second of audio held back in a page (the muxer's default).
  const gaps = arrivals.slice(1).map((a, i) => a.at - arrivals[i].at);
  assert.ok(Math.max(...gaps.slice(5)) < 200, `packets came ${Math.round(Math.max(...gaps.slice(5)))} ms apart at most`);
  const audioFile = join(dir, 'a.opus');
  writeFileSync(audioFile, Buffer.concat(audio));

  const { flashes, onsets, worstMs } = beepsOnFlashes(videoFile, audioFile);
  console.log(`# flashes at ${flashes.map((t) => t.toFixed(3)).join(', ')}; beeps at ${onsets.map((t) => t.toFixed(3)).join(', ')}`);
  assert.ok(flashes.length >= 2 && onsets.length >= 2, 'at least two of each');
  assert.ok(worstMs <= 45, `a flash's beep is ${worstMs} ms off`);
});

/**
 * Sound with the picture (issue 15), end to end: `share --source test --audio test` through its
 * relay to `watch --output rec.mkv` and `rec.mp4`. FFmpeg judges each recording: two tracks that
 * decode without an error, the sound as long as the picture with no hole in it (the silence the
 * sharer left out, DTX, filled), and each beep on its flash (ITU-R BT.1359's detectability
 * threshold: sound at most 45 ms before the picture, 125 ms after).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { udpcast, killAll, exited, freePort, sleep, waitFor, type Running } from './helpers/cli.ts';
import { beepsOnFlashes, soundOnsets } from './helpers/media.ts';
import { soundGaps } from './helpers/sound.ts';
import { skipUnless } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-audio-e2e-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Each stream's codec and duration (s) as ffprobe reads them from the decoded packets. */
function streams(file: string): Array<{ codec: string; duration: number }> {
  const r = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=index,codec_name:packet=stream_index,pts_time,duration_time', '-of', 'json', file], { encoding: 'utf8' });
  const j = JSON.parse(r.stdout) as { streams: Array<{ index: number; codec_name: string }>; packets: Array<{ stream_index: number; pts_time: string; duration_time?: string }> };
  return j.streams.map((s) => {
    const times = j.packets.filter((p) => p.stream_index === s.index).map((p) => Number(p.pts_time));
    return { codec: s.codec_name, duration: times.length ? Math.max(...times) - Math.min(...times) : 0 };
  });
}

test('share --audio test → watch --output .mkv and .mp4: picture and sound, each beep on its flash; --no-audio leaves it out', { skip: skipUnless('ffmpeg', 'ffprobe'), timeout: 90_000 }, async () => {
  const port = await freePort();
  const shareStats = join(dir, 'share.json');
  const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '320x240', '--audio', 'test', '--duration', '10', '--no-dashboard', '--stats-json', shareStats]);
  const viewers: Running[] = [];
  try {
    // It says what sound it sends once its publisher is up, after the relay is listening.
    await waitFor(() => /sound: a 1 kHz beep each second/.test(share.stderrText()), 8000, 'the sharer to say what sound it sends');
    // Both containers from the same share, each by a viewer of its own.
    const files = ['mkv', 'mp4'].map((ext) => join(dir, `rec.${ext}`));
    const muted = join(dir, 'muted.mkv');
    const watches = files.map((file) => udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '6', '--output', file]));
    const mute = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '3', '--output', muted, '--no-audio']);
    viewers.push(...watches, mute);
    for (const watch of watches) assert.equal((await exited(watch, 20_000)).code, 0, watch.stderrText());
    assert.equal((await exited(mute, 20_000)).code, 0, mute.stderrText());
    assert.deepEqual(streams(muted).map((s) => s.codec), ['h264'], '--no-audio: the picture alone');

    for (const file of files) {
      // framemd5 decodes every frame of both tracks and, unlike the null muxer, takes the first
      // frames' uneven spacing (a run's clock settles over its first frames) without complaint.
      const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.equal(decode.stderr, '', `${file}: both tracks decode without an error`);
      const videoTimes = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
      assert.ok(videoTimes.every((t, i) => i === 0 || t > videoTimes[i - 1]), `${file}: picture times strictly increase`);
      const [video, audio] = streams(file);
      assert.deepEqual([video?.codec, audio?.codec], ['h264', 'opus'], file);
      assert.ok(video.duration >= 4, `${file}: ${video.duration} s of picture`);
      assert.ok(Math.abs(audio.duration - video.duration) <= 0.02 * video.duration, `${file}: sound ${audio.duration} s, picture ${video.duration} s`);
      // The sharer leaves most of each second's silence out (DTX): the viewer filled it with
      // silence, so the track has no hole and no concealment mark.
      const gaps = soundGaps(file);
      assert.deepEqual([gaps.gaps, gaps.marks], [0, 0], `${file}: ${gaps.gaps} gaps, ${gaps.marks} marks in ${gaps.packets} packets`);
      const { flashes, onsets, worstMs } = beepsOnFlashes(file);
      console.log(`# ${file}: flashes at ${flashes.map((t) => t.toFixed(3)).join(', ')}; beeps at ${onsets.map((t) => t.toFixed(3)).join(', ')}; worst ${worstMs} ms`);
      assert.ok(flashes.length >= 3, `${file}: ${flashes.length} flashes`);
      assert.ok(worstMs <= 45, `${file}: a beep ${worstMs} ms from its flash`);
    }
    const sent = readFileSync(shareStats, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).at(-1);
    assert.ok(sent.audioPacketsSent >= 250, `${sent.audioPacketsSent} Opus packets sent`);
    // A 100 ms beep a second. libopus's CELT (10 ms packets) goes on coding about 500 ms after a
    // beep before its packets are digital silence (measured with FFmpeg 5.1); of the ~400 ms left
    // the first 200 are sent: about 20 packets a second are left out.
    console.log(`# share: ${sent.audioPacketsSent} sound packets sent, ${sent.audioSilenceNotSent} of silence not sent (DTX)`);
    assert.ok(sent.audioSilenceNotSent >= 100, `${sent.audioSilenceNotSent} packets of silence not sent, ${sent.audioPacketsSent} sent`);
  } finally {
    for (const v of viewers) if (v.child.exitCode === null && v.child.signalCode === null) process.kill(v.pid, 'SIGKILL');
    share.child.kill('SIGTERM');
    await exited(share, 5000).catch(() => undefined);
  }
});

test("long silences (a file's own sound, 20 ms packets): left out but for a packet each 400 ms (DTX); the recording has them whole, each beep at its time", { skip: skipUnless('ffmpeg', 'ffprobe'), timeout: 90_000 }, async () => {
  // A 100 ms beep every 3 s: libopus codes about 500 ms after it (measured), then digital silence.
  const clip = join(dir, 'beeps.mkv');
  const made = spawnSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-f', 'lavfi', '-i', "aevalsrc=exprs='if(lt(mod(t,3),0.1),0.5*sin(2*PI*1000*t),0)':s=48000",
    '-t', '8', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', '-c:a', 'libopus', clip], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const port = await freePort();
  const shareStats = join(dir, 'share20.json');
  const watchStats = join(dir, 'watch20.json');
  const file = join(dir, 'rec20.mkv');
  const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', clip, '--audio', '--audio-frame', '20', '--no-dashboard', '--stats-json', shareStats]);
  let watch: Running | undefined;
  try {
    await waitFor(() => /sound: /.test(share.stderrText()), 8000, 'the sharer to say what sound it sends');
    assert.match(share.stderrText(), /silence is not sent after its first 200 ms \(DTX\)/);
    watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--output', file, '--stats-json', watchStats]);
    assert.equal((await exited(share, 30_000)).code, 0, share.stderrText());
    await sleep(500);
    watch.child.kill('SIGTERM');
    assert.equal((await exited(watch, 5000)).code, 0, watch.stderrText());
    const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    assert.equal(decode.stderr, '', 'both tracks decode without an error');
    const [video, audio] = streams(file);
    assert.ok(Math.abs(audio.duration - video.duration) <= 0.02 * video.duration, `sound ${audio.duration} s, picture ${video.duration} s`);
    const gaps = soundGaps(file);
    assert.deepEqual([gaps.gaps, gaps.marks], [0, 0], `${gaps.gaps} gaps, ${gaps.marks} marks in ${gaps.packets} packets`);
    // silencedetect also ends a silence at the end of the file: not a beep.
    const beeps = soundOnsets(file).filter((t) => t < gaps.seconds - 0.2);
    const sent = readFileSync(shareStats, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).at(-1);
    const seen = readFileSync(watchStats, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).at(-1);
    console.log(`# long silences: share sent ${sent.audioPacketsSent}, left out ${sent.audioSilenceNotSent}; watch filled ${seen.audioSilence}, concealed ${seen.audioConcealed}; beeps at ${beeps.map((t) => t.toFixed(3)).join(', ')} s`);
    // Of each 3 s (150 packets) about 45 are sent: the beep, its tail, 200 ms of silence, then a
    // packet each 400 ms (seen: 154 sent, 244 left out).
    assert.ok(sent.audioSilenceNotSent >= sent.audioPacketsSent, `${sent.audioSilenceNotSent} packets of silence not sent, ${sent.audioPacketsSent} sent`);
    assert.ok(seen.audioSilence >= 100 && seen.audioConcealed === 0, `watch filled ${seen.audioSilence} packets of silence, concealed ${seen.audioConcealed}`);
    assert.ok(beeps.length >= 2, `beeps at ${beeps.join(', ')}`);
    for (let i = 1; i < beeps.length; i++) assert.ok(Math.abs(beeps[i] - beeps[i - 1] - 3) <= 0.02, `beeps at ${beeps.join(', ')} s: 3 s apart`);
  } finally {
    if (watch && watch.child.exitCode === null && watch.child.signalCode === null) process.kill(watch.pid, 'SIGKILL');
    share.child.kill('SIGTERM');
    await exited(share, 5000).catch(() => undefined);
  }
});

// share → relay → watch as separate processes with real FFmpeg, judged by FFmpeg decoding what the
// viewers wrote. Each test ends every process it started (after hook, by pid).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpcast, killAll, exited, freePort, sleep, waitFor, type Running } from './helpers/cli.ts';
import { decode, lastStats } from './helpers/decode.ts';
import { skipUnless } from './helpers/tools.ts';
import { loadNative } from '../src/relay/io/native.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-e2e-'));
after(killAll);

const skip = skipUnless('ffmpeg');

function statsOf(file: string): Record<string, any> {
  return lastStats(readFileSync(file, 'utf8'));
}

describe('share → relay → watch', { skip }, () => {
  // The relay's two ways in and out, one per codec: the native helper (when built) and node:dgram.
  const built = loadNative().native !== undefined;
  for (const [codec, native] of [['h264', true], ['mjpeg', false]] as const) {
    const path = native && built ? 'native' : 'dgram';
    test(`${codec}, relay sending by ${path}: three viewers get the same clean frames, ≥ 95% of those sent`, async () => {
      const port = await freePort();
      const relay = udpcast([
        'relay', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard', '--duration', '14', ...(native ? [] : ['--no-native']),
      ]);
      const viewers: Running[] = [];
      let share: Running | undefined;
      try {
        // Two lines, which may come in two reads of its stderr: 'listening', then how datagrams go.
        await waitFor(() => relay.stderrText().includes('datagrams: '), 5000, 'the relay');
        assert.match(relay.stderrText(), path === 'native' ? /datagrams: native helper, recvmmsg and sendmmsg/ : /datagrams: node:dgram, one system call each \(/);
        for (let i = 0; i < 3; i++) {
          viewers.push(
            udpcast([
              'watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '9',
              '--output', join(dir, `${codec}-${i}.${codec}`), '--stats-json', join(dir, `${codec}-${i}.json`),
            ]),
          );
        }
        await sleep(1000); // the viewers subscribe before the stream starts, so they see it all
        const shareStats = join(dir, `${codec}-share.json`);
        share = udpcast([
          'share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--codec', codec, '--size', '320x240',
          '--fps', '25', '--duration', '4', '--no-dashboard', '--stats-json', shareStats,
        ]);
        assert.equal((await exited(share, 20_000)).code, 0, share.stderrText());
        const sent = statsOf(shareStats).framesSent;
        assert.ok(sent >= 60, `share sent only ${sent} frames in 4 s at 25 fps`);
        const results = [];
        for (const [i, v] of viewers.entries()) {
          assert.equal((await exited(v, 20_000)).code, 0, v.stderrText());
          const d = decode(join(dir, `${codec}-${i}.${codec}`), codec);
          assert.equal(d.errors, '', `viewer ${i}: FFmpeg reported decode errors`);
          assert.ok(d.frames >= 0.95 * sent, `viewer ${i}: ${d.frames} of ${sent} frames`);
          const st = statsOf(join(dir, `${codec}-${i}.json`));
          assert.equal(st.framesComplete, d.frames, 'the stats count the frames written');
          for (const k of ['t', 'packetsReceived', 'lostOnWire', 'rfc3550Lost', 'jitterMs', 'bitrateKbps', 'fps', 'framesComplete', 'framesDropped', 'latencyMs']) {
            assert.ok(k in st, `stats-json has ${k}`);
          }
          assert.ok(typeof st.latencyMs === 'number' && st.latencyMs >= 0 && st.latencyMs < 1000, `latency ${st.latencyMs} ms`);
          results.push(d);
        }
        assert.deepEqual(results[1].md5s, results[0].md5s, 'viewers 0 and 1 decoded the same frames');
        assert.deepEqual(results[2].md5s, results[0].md5s, 'viewers 0 and 2 decoded the same frames');
        relay.child.kill('SIGTERM');
        assert.equal((await exited(relay, 5000)).code, 0);
      } finally {
        for (const r of [share, ...viewers, relay]) r?.child.kill('SIGTERM');
        for (const r of [share, ...viewers, relay]) if (r) await exited(r, 5000).catch(() => undefined);
      }
    });
  }

  test('a viewer that starts late gets clean video from its first frame', async () => {
    const port = await freePort();
    const out = join(dir, 'late.h264');
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '320x240', '--gop', '30', '--duration', '7', '--no-dashboard']);
    let watch: Running | undefined;
    try {
      await waitFor(() => share.stderrText().includes('listening'), 5000, 'the sharer');
      await sleep(2500);
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '3', '--output', out]);
      assert.equal((await exited(watch, 15_000)).code, 0, watch.stderrText());
      const d = decode(out, 'h264');
      assert.equal(d.errors, '');
      assert.ok(d.frames >= 30, `only ${d.frames} frames in 3 s`);
      await exited(share, 15_000);
    } finally {
      for (const r of [watch, share]) r?.child.kill('SIGTERM');
      for (const r of [watch, share]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });

  test('the relay killed and restarted mid-stream: the viewer resumes within 3 s', async () => {
    const port = await freePort();
    const relayArgs = ['relay', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard'];
    let relay = udpcast(relayArgs);
    let watch: Running | undefined;
    let share: Running | undefined;
    try {
      await waitFor(() => relay.stderrText().includes('listening'), 5000, 'the relay');
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '14', '--output', '-']);
      share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--gop', '30', '--duration', '13', '--no-dashboard']);
      await waitFor(() => watch!.stdout.length > 10, 15_000, 'video before the restart');
      relay.child.kill('SIGKILL');
      await exited(relay, 5000);
      await sleep(1000);
      const before = watch.stdout.length;
      relay = udpcast(relayArgs);
      await waitFor(() => relay.stderrText().includes('listening'), 5000, 'the restarted relay');
      const restartedAt = Date.now();
      await waitFor(() => watch!.stdout.length > before, 6000, 'video after the restart');
      const resumedAfter = watch.stdoutTimes[before] - restartedAt;
      assert.ok(resumedAfter <= 3000, `resumed ${resumedAfter} ms after the relay came back`);
      watch.child.kill('SIGTERM');
      share.child.kill('SIGTERM');
      assert.equal((await exited(watch, 5000)).code, 0);
      assert.equal((await exited(share, 5000)).code, 0);
      // Piped, --output - is Matroska (framed and stamped on arrival).
      const file = join(dir, 'restart.mkv');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(file, Buffer.concat(watch.stdout));
      assert.equal(decode(file, 'matroska').errors, '', 'frames around the restart decode cleanly');
    } finally {
      for (const r of [watch, share, relay]) r?.child.kill('SIGTERM');
      for (const r of [watch, share, relay]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });

  test('SIGTERM ends the sharer cleanly: FFmpeg gone, BYE sent, viewers told', async () => {
    const port = await freePort();
    const stats = join(dir, 'bye.json');
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '320x240', '--no-dashboard']);
    let watch: Running | undefined;
    try {
      await waitFor(() => /ffmpeg started \(pid \d+\)/.test(share.stderrText()), 8000, 'ffmpeg');
      const ffmpegPid = Number(/ffmpeg started \(pid (\d+)\)/.exec(share.stderrText())![1]);
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--stats-json', stats]);
      await waitFor(() => existsSync(stats) && statSync(stats).size > 0 && statsOf(stats).framesComplete > 5, 8000, 'frames at the viewer');
      share.child.kill('SIGTERM');
      assert.equal((await exited(share, 5000)).code, 0, share.stderrText());
      assert.throws(() => process.kill(ffmpegPid, 0), /ESRCH/, 'ffmpeg was killed with its sharer');
      await waitFor(() => statsOf(stats).state === 'ended', 3000, 'the viewer to hear the stream ended');
      watch.child.kill('SIGINT');
      assert.equal((await exited(watch, 5000)).code, 0);
    } finally {
      for (const r of [watch, share]) r?.child.kill('SIGTERM');
      for (const r of [watch, share]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });
});

describe('command-line errors are one clear line and a non-zero exit', () => {
  async function fails(args: string[], code: number, pattern: RegExp, env: NodeJS.ProcessEnv = {}) {
    const r = udpcast(args, env);
    const e = await exited(r, 15_000);
    const err = r.stderrText().trim();
    assert.equal(e.code, code, `exit code for ${args.join(' ')}: ${err}`);
    assert.match(err, pattern);
    assert.equal(err.split('\n').length, 1, `one line, got:\n${err}`);
  }

  test('bad port', () => fails(['share', '--port', '70000'], 2, /--port must be 0-65535, got 70000/));
  test('bad port from the environment', () => fails(['relay'], 2, /UDPCAST_PORT must be 0-65535, got 99999/, { UDPCAST_PORT: '99999' }));
  test('bad watch target port', () => fails(['watch', '127.0.0.1:0'], 2, /the relay to watch must be HOST\[:PORT\] with a port 1-65535, got 127\.0\.0\.1:0/));
  test('a port that is not a number says so, not NaN', () => fails(['relay', '--port', 'abc'], 2, /--port must be 0-65535, got something that is not a number/));
  test('an --output that cannot be written', () => fails(['watch', '--player', 'none', '--output', '/nonexistent/dir/x.h264'], 2, /--output \/nonexistent\/dir\/x\.h264: cannot write there \(its folder does not exist\)/));
  test('a variable for another command is not an unknown option here', async () => {
    const port = await freePort();
    await fails(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard'], 1, /no answer from relay/, { UDPCAST_KEY: 'relay-secret-1', UDPCAST_PORT: '6000' });
  });
  test('choice errors are one line too', () => fails(['share', '--codec', 'vp9'], 2, /Invalid values: .*codec/));
  test('--fec-mode without --fec', () => fails(['share', '--source', 'test', '--fec-mode', 'column'], 2, /--fec-mode and --fec-depth go with --fec PCT/));
  test('bad size', () => fails(['share', '--size', '1280by720'], 2, /--size must be WIDTHxHEIGHT/));
  test('bad stream name', () => fails(['watch', '--stream', 'no spaces'], 2, /--stream must be 1-64 letters/));
  test('unknown option', () => fails(['relay', '--prot', '5004'], 2, /Unknown argument/));
  test('no command', () => fails([], 2, /name a command/));
  test('mjpeg at a size RFC 2435 cannot carry', () =>
    fails(['share', '--source', 'test', '--codec', 'mjpeg', '--size', '2560x1440'], 2, /at most 2040x2040.*--size/));
  test('no FFmpeg where --ffmpeg points', () => fails(['share', '--source', 'test', '--ffmpeg', '/nonexistent/ffmpeg'], 2, /ffmpeg/i));
  test('unreachable relay, watching', async () => {
    const port = await freePort();
    await fails(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard'], 1, /no answer from relay 127\.0\.0\.1:\d+ after 5 s/);
  });
  test('unreachable relay, sharing', { skip }, async () => {
    const port = await freePort();
    const r = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--no-dashboard']);
    const e = await exited(r, 15_000);
    assert.equal(e.code, 1);
    assert.match(r.stderrText(), /no answer from relay 127\.0\.0\.1:\d+ after 5 s/);
  });
});

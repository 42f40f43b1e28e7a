/**
 * Quality layers end to end, with real FFmpeg (issue 14, items 1 and 3): one FFmpeg encodes three
 * sizes with keyframes on the same pictures; through the relay, a viewer behind a 1.2 Mbit/s link
 * (udpcast impair, a 12-datagram queue) is moved to a layer its path takes and keeps its frame
 * rate, while a viewer on a clean link keeps the full picture.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Encoder, type CapturedFrame } from '../src/encode/encoder.ts';
import { killAllChildren } from '../src/util/child.ts';
import { codec } from '../src/codecs/registry.ts';
import { udpcast, killAll, exited, freePort, waitFor } from './helpers/cli.ts';
import { decode } from './helpers/decode.ts';
import { skipUnless } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-layers-'));
after(() => {
  killAll();
  killAllChildren();
  rmSync(dir, { recursive: true, force: true });
});
const skip = skipUnless('ffmpeg');

const lines = (file: string): Record<string, any>[] =>
  readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

test('one FFmpeg, three layers: full, half and quarter size, keyframes on the same pictures', { skip }, async () => {
  const enc = new Encoder({
    ffmpegPath: 'ffmpeg',
    capture: { source: 'test', fps: 30, size: { width: 1280, height: 720 } },
    encode: { codec: 'h264', bitrateKbps: 2500, fps: 30, gop: 30, size: { width: 1280, height: 720 }, layers: 3 },
  });
  const frames: CapturedFrame[] = [];
  enc.on('frame', (f) => frames.push(f));
  enc.start();
  try {
    await waitFor(() => frames.filter((f) => f.layer === 2).length >= 70, 20_000, '70 frames of the smallest layer');
  } finally {
    await enc.stop();
  }
  for (const [layer, size] of [[0, '1280x720'], [1, '640x360'], [2, '320x180']] as const) {
    const mine = frames.filter((f) => f.layer === layer);
    const key = mine.find((f) => f.keyframe)!;
    const s = codec('h264').frameSize(Buffer.concat(key.units.flatMap((u) => [Buffer.from([0, 0, 0, 1]), u])));
    assert.equal(s && `${s.width}x${s.height}`, size, `layer ${layer}`);
    // Keyframes every 30 pictures, on the same ones in every layer.
    const keys = mine.slice(0, 70).flatMap((f, i) => (f.keyframe ? [i] : []));
    assert.deepEqual(keys, [0, 30, 60], `layer ${layer} keyframes`);
  }
  assert.equal(enc.framesEncoded, frames.filter((f) => f.layer === 0).length, 'pictures are counted once');
});

test('a viewer behind 1.2 Mbit/s gets a smaller layer at the full frame rate; a clean one keeps the full picture', { skip }, async () => {
  const relayPort = await freePort();
  const impairPort = await freePort();
  const rstats = join(dir, 'relay.ndjson');
  const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(relayPort), '--no-dashboard', '--stats-json', rstats]);
  const impair = udpcast(['impair', '--listen', `127.0.0.1:${impairPort}`, '--to', `127.0.0.1:${relayPort}`, '--down-rate', '1.2M', '--down-queue', '12', '--delay', '10ms', '--seed', '1']);
  await waitFor(() => relay.stderrText().includes('listening') && /impair: up/.test(impair.stderrText()), 15_000, 'relay and impair');
  const share = udpcast(['share', '--relay', `127.0.0.1:${relayPort}`, '--source', 'test', '--size', '1280x720', '--layers', '3', '--duration', '22', '--no-dashboard']);
  await waitFor(() => /publisher/.test(relay.stderrText()), 15_000, 'the sharer');
  const narrow = join(dir, 'narrow.ndjson');
  const clean = join(dir, 'clean.ndjson');
  const narrowOut = join(dir, 'narrow.mkv');
  const a = udpcast(['watch', `127.0.0.1:${impairPort}`, '--player', 'none', '--no-dashboard', '--stats-json', narrow, '--output', narrowOut]);
  const b = udpcast(['watch', `127.0.0.1:${relayPort}`, '--player', 'none', '--no-dashboard', '--stats-json', clean]);
  assert.equal((await exited(share, 45_000)).code, 0, share.stderrText());
  for (const w of [a, b]) {
    w.child.kill('SIGTERM');
    await exited(w, 10_000);
  }
  assert.match(share.stderrText(), /sending 3 quality layers: 1280x720 at 2500k, 640x360 at 1000k, 320x180 at 375k/);
  // A move down waits for the lower layer's next keyframe, or starts from its cache when the path
  // takes that in 80 ms (core.ts, since f3e9f29): either is the narrow viewer moved down.
  assert.match(relay.stderrText(), /viewer 127\.0\.0\.1:\d+ (to layer [12] at its next keyframe|now gets layer [12], from its cache) \(down: /);
  // The last 8 seconds of each viewer (stats once a second; the very last may be partial).
  const tail = (f: string) => lines(f).filter((x) => typeof x.fps === 'number').slice(-9, -1);
  const n = tail(narrow);
  const c = tail(clean);
  const mean = (xs: Record<string, any>[], k: string) => xs.reduce((t, x) => t + x[k], 0) / xs.length;
  console.log(`# narrow: ${mean(n, 'fps').toFixed(1)} fps, ${n.map((x) => x.width).join(' ')}; clean: ${mean(c, 'fps').toFixed(1)} fps ${Math.round(mean(c, 'bitrateKbps'))} kbit/s`);
  assert.ok(mean(n, 'fps') >= 20, `narrow viewer: ${n.map((x) => x.fps).join(' ')}`);
  // The clean viewer keeps the top layer and loses no frame of it. Its rate is judged over the 8 s:
  // one second's count can read 27 and the next 33 when the sharer's encoder (three layers on a
  // shared 2-core machine) is late across a second's edge, with no frame lost.
  assert.ok(c.every((x) => x.width === 1280), `clean viewer: ${c.map((x) => `${x.fps}@${x.width}`).join(' ')}`);
  assert.ok(mean(c, 'fps') >= 28, `clean viewer: ${c.map((x) => x.fps).join(' ')} fps`);
  assert.equal(c.at(-1)!.framesDropped + c.at(-1)!.framesSkipped, c[0].framesDropped + c[0].framesSkipped, 'the clean viewer drops no frame');
  assert.ok(mean(c, 'bitrateKbps') >= 2000, `clean viewer bitrate ${mean(c, 'bitrateKbps')}`);
  // The narrow viewer's recording decodes without an error, at the sizes it was sent.
  const d = decode(narrowOut, 'matroska');
  assert.equal(d.errors, '', 'FFmpeg decodes the recording without an error');
  assert.ok(d.frames > 200, `${d.frames} frames`);
  impair.child.kill('SIGTERM');
  relay.child.kill('SIGTERM');
  await exited(impair, 5000);
  await exited(relay, 5000);
});

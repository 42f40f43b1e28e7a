/**
 * `watch --output FILE`: the file is created, or an existing one replaced, with the recording's
 * first bytes and not before. A watch that ends before it records anything (no display, no relay
 * answering, no such stream) leaves a file that was there byte for byte as it was and creates no
 * empty one (a new user's precious.mkv was emptied at start-up by a watch that then failed).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink, type SinkFrame } from '../src/player/sinks.ts';
import { checkOutput } from '../src/apps/options.ts';
import { UsageError } from '../src/util/errors.ts';
import type { ReceivedAudio } from '../src/player/audio.ts';
import { udpcast, killAll, exited, freePort, waitFor } from './helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-output-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Someone's file, larger than any recording here, so a replacement that did not truncate shows. */
const PRECIOUS = Buffer.alloc(1 << 20, 0xaa);
let n = 0;
/** A path in `dir` holding PRECIOUS, or nothing. */
function place(ext: string, existing: boolean): string {
  const path = join(dir, `f${n++}${ext}`);
  if (existing) writeFileSync(path, PRECIOUS);
  return path;
}

/** An H.264 access unit (SPS, PPS, then an IDR or a P slice). */
const au = (idr: boolean) =>
  Buffer.concat([
    Buffer.from('000000016742c01e8c8d40a0fd00f0884535000000016' + '8ce3c80', 'hex'),
    Buffer.from([0, 0, 0, 1, idr ? 0x65 : 0x41]),
    Buffer.alloc(100, 0x55),
  ]);
const frame = (i: number, keyframe: boolean): SinkFrame => ({ codec: 'h264', data: au(keyframe), keyframe, timestamp: 3000 * (i + 1), latencyMs: 20 });
const sound: ReceivedAudio = { data: Buffer.from([0xf8, 1, 2]), ssrc: 1, timestamp: 0, videoTimestamp: 3000, concealed: false };

/** Frames 33 ms apart (the first a keyframe), as watch hands them on; then close. */
async function record(path: string, frames: number, log?: (line: string) => void): Promise<void> {
  const sink = new FileSink(path, { log });
  for (let i = 0; i < frames; i++) sink.write(frame(i, i === 0), 33 * (i + 1));
  await sink.close();
}

describe('--output FILE: nothing recorded, nothing touched', () => {
  for (const ext of ['.mkv', '.mp4', '.h264', '.mjpeg']) {
    test(`${ext}: a watch that ends before its first frame leaves an existing file as it was, and creates none`, async () => {
      const existing = place(ext, true);
      await new FileSink(existing).close();
      assert.ok(readFileSync(existing).equals(PRECIOUS), 'the existing file unchanged');
      const fresh = place(ext, false);
      await new FileSink(fresh).close();
      assert.equal(existsSync(fresh), false, 'no empty file left behind');
    });
  }

  test('.mkv, .mp4: frames before the first keyframe and sound before the picture write nothing yet', async () => {
    for (const ext of ['.mkv', '.mp4']) {
      const existing = place(ext, true);
      const sink = new FileSink(existing, { audio: true });
      sink.writeAudio(sound, 10);
      for (let i = 0; i < 5; i++) sink.write(frame(i, false), 33 * (i + 1));
      await sink.close();
      assert.ok(readFileSync(existing).equals(PRECIOUS), `${ext}: a header needs a keyframe, so nothing was written`);
    }
  });
});

describe('--output FILE: the recording starts, the file is replaced', () => {
  for (const ext of ['.mkv', '.mp4', '.h264']) {
    test(`${ext}: an existing file is replaced by exactly what a new one gets (truncated, the end-of-file patch in place)`, async () => {
      const existing = place(ext, true);
      const fresh = place(ext, false);
      await record(existing, 10);
      await record(fresh, 10);
      const got = readFileSync(existing);
      assert.ok(got.length > 0 && got.length < PRECIOUS.length, `${got.length} bytes`);
      assert.ok(got.equals(readFileSync(fresh)), 'the same bytes as a recording into a new file');
    });
  }

  test('.h264: the raw stream is the frames, byte for byte', async () => {
    const path = place('.h264', true);
    await record(path, 3);
    assert.ok(readFileSync(path).equals(Buffer.concat([au(true), au(false), au(false)])));
  });

  test('.mkv: a recording that is only its first keyframe (written at close) replaces the file too', async () => {
    const path = place('.mkv', true);
    await record(path, 1);
    assert.ok(readFileSync(path).subarray(0, 4).equals(Buffer.from('1a45dfa3', 'hex')), 'EBML header');
  });

  test('a folder that does not exist: nothing said until the first bytes, then said once; watching goes on', async () => {
    const path = join(dir, 'no such folder', 'x.h264');
    const logs: string[] = [];
    await record(path, 0, (l) => logs.push(l));
    assert.equal(logs.length, 0, 'nothing was to be written');
    await record(path, 5, (l) => logs.push(l));
    await waitFor(() => logs.length > 0, 2000, 'the error line');
    assert.deepEqual(logs, [`--output ${path}: cannot write (ENOENT); watching goes on without it`]);
  });
});

// The up-front check (checkOutput in src/apps/options.ts) opened the file with 'w', emptying it
// before watch started, whatever came next: it checks the folder and the file's access now.
describe('--output FILE: the check before watch starts', () => {
  test('checkOutput leaves an existing file as it was and creates none', () => {
    const existing = place('.mkv', true);
    assert.equal(checkOutput(existing, false), existing);
    assert.ok(readFileSync(existing).equals(PRECIOUS), 'the existing file unchanged');
    const fresh = place('.mkv', false);
    assert.equal(checkOutput(fresh, false), fresh);
    assert.equal(existsSync(fresh), false, 'no empty file left behind');
  });

  test('checkOutput still refuses, in one line, a folder that does not exist and a folder given as the file', () => {
    const refused = (path: string, why: string) =>
      assert.throws(() => checkOutput(path, false), (e: Error) => e instanceof UsageError && e.message === `--output ${path}: cannot write there (${why})`);
    refused(join(dir, 'no such folder', 'x.mkv'), 'its folder does not exist');
    const folder = join(dir, 'a-folder.mkv');
    mkdirSync(folder);
    refused(folder, 'it is a folder');
  });

  test('udpcast watch with no relay answering (--duration 2) leaves --output as it was, says so and exits 1', { timeout: 20_000 }, async () => {
    const existing = place('.mkv', true);
    const watch = udpcast(['watch', `127.0.0.1:${await freePort()}`, '--player', 'none', '--no-dashboard', '--output', existing, '--duration', '2']);
    const e = await exited(watch, 15_000);
    assert.ok(readFileSync(existing).equals(PRECIOUS), `the existing file unchanged; stderr:\n${watch.stderrText()}`);
    // Its --duration ended before the 5 s a silent relay is given: still said, and not a success.
    assert.equal(e.code, 1, watch.stderrText());
    assert.match(watch.stderrText(), /no answer from relay 127\.0\.0\.1:\d+ after 2 s: /);
  });
});

/**
 * Recordings as a person makes them: `watch --output rec.mkv` or `rec.mp4` while a share runs.
 * ffprobe is the judge: every frame decodes, the file lasts as long as the frames it holds at the
 * sharer's 30 fps (timestamps from RTP, not a guessed rate), MJPEG included.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpcast, killAll, exited, freePort, waitFor, type Running } from './helpers/cli.ts';
import { probe } from './helpers/media.ts';
import { skipUnless } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-rec-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

const FPS = 30;

describe('recordings: --output .mkv and .mp4', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  for (const codec of ['h264', 'mjpeg'] as const) {
    test(`${codec}: both containers decode cleanly and last frames / ${FPS} s`, async () => {
      const port = await freePort();
      const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '320x240', '--fps', String(FPS), '--codec', codec, '--duration', '12', '--no-dashboard']);
      const files = ['mkv', 'mp4'].map((ext) => join(dir, `${codec}.${ext}`));
      let watches: Running[] = [];
      try {
        await waitFor(() => share.stderrText().includes('listening'), 8000, 'the sharer');
        watches = files.map((f) => udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '6', '--output', f]));
        for (const w of watches) assert.equal((await exited(w, 20_000)).code, 0, w.stderrText());
        share.child.kill('SIGTERM');
        await exited(share, 5000);
      } finally {
        for (const r of [...watches, share]) r.child.kill('SIGTERM');
        for (const r of [...watches, share]) await exited(r, 5000).catch(() => undefined);
      }
      for (const f of files) {
        const p = probe(f);
        assert.equal(p.errors, '', `${f}: no decode errors`);
        assert.equal(p.codec, codec);
        assert.ok(p.frames >= 4 * FPS, `${f}: ${p.frames} frames`);
        const expected = p.frames / FPS;
        assert.ok(Math.abs(p.duration! - expected) <= 0.02 * expected, `${f}: ${p.duration} s for ${p.frames} frames (${expected} s)`);
        assert.ok(Math.abs(p.fps! - FPS) <= 0.02 * FPS, `${f}: ${p.fps} fps`);
      }
    });
  }
});

/**
 * The sound is carried like the picture (issue 15): through a relay that checks --key, encrypted
 * end to end with --encrypt, and to a viewer that joins late. A tap on the relay → viewer path
 * sees the sound's packets but not their contents: plain RED would start with its header byte
 * (F bit + Opus's payload type) in nearly every packet.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpairProxy } from '../src/impair/proxy.ts';
import { NO_IMPAIRMENT } from '../src/impair/core.ts';
import { PT_OPUS, PT_RED } from '../src/defaults.ts';
import { isRtp, parseRtp } from '../src/rtp/packet.ts';
import { udpcast, killAll, exited, freePort, sleep, waitFor } from './helpers/cli.ts';
import { beepsOnFlashes } from './helpers/media.ts';
import { soundGaps } from './helpers/sound.ts';
import { skipUnless } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-audio-secure-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

test('--key and --encrypt: a late viewer with the key hears the sound in step; the path sees only ciphertext', { skip: skipUnless('ffmpeg', 'ffprobe') }, async () => {
  const port = await freePort();
  const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--key', 'relay-secret-3', '--no-dashboard']);
  const audioPayloads: Buffer[] = [];
  const tap = await ImpairProxy.start({
    listenPort: 0, listenHost: '127.0.0.1', target: { host: '127.0.0.1', port }, up: NO_IMPAIRMENT, down: NO_IMPAIRMENT, seed: 1,
    onForward: (direction, d) => {
      if (direction !== 'down' || !isRtp(d)) return;
      const p = parseRtp(Buffer.from(d));
      if (p.payloadType === PT_RED) audioPayloads.push(p.payload);
    },
  });
  try {
    await waitFor(() => relay.stderrText().includes('listening'), 5000, 'the relay');
    const share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--key', 'relay-secret-3', '--encrypt', 'viewers-only-3', '--source', 'test', '--size', '320x240', '--audio', 'test', '--duration', '9', '--no-dashboard']);
    // Late: the share has been sending for 3 s; it starts from the relay's cached keyframe.
    await sleep(3000);
    const file = join(dir, 'late.mkv');
    const watch = udpcast(['watch', `127.0.0.1:${tap.port}`, '--encrypt', 'viewers-only-3', '--player', 'none', '--no-dashboard', '--duration', '5', '--output', file]);
    assert.equal((await exited(watch, 20_000)).code, 0, watch.stderrText());
    assert.equal((await exited(share, 20_000)).code, 0, share.stderrText());
    const g = soundGaps(file);
    assert.ok(g.seconds >= 4, `${g.seconds} s of sound`);
    assert.equal(g.gaps, 0, 'no gap on a clean path');
    const { flashes, worstMs } = beepsOnFlashes(file);
    assert.ok(flashes.length >= 3, `${flashes.length} flashes`);
    assert.ok(worstMs <= 45, `a beep ${worstMs} ms from its flash`);
    assert.ok(audioPayloads.length >= 200, `${audioPayloads.length} sound packets on the path`);
    const plainLooking = audioPayloads.filter((p) => p[0] === (0x80 | PT_OPUS)).length;
    assert.ok(plainLooking <= audioPayloads.length * 0.05, `${plainLooking} of ${audioPayloads.length} payloads start like plain RED`);
  } finally {
    await tap.close();
    relay.child.kill('SIGTERM');
    await exited(relay, 5000).catch(() => undefined);
  }
});

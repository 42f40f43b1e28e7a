// SECURITY.md's claims, each as a test against real processes on 127.0.0.1.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpcast, killAll, exited, freePort, sleep, waitFor, type Running } from './helpers/cli.ts';
import { decode, lastStats } from './helpers/decode.ts';
import { skipUnless } from './helpers/tools.ts';
import { ControlType, controlApp } from '../src/transport/control.ts';
import { serializeRtcp, isRtcp } from '../src/transport/rtcp.ts';
import { serializeRtpToBuffer, isRtp } from '../src/rtp/packet.ts';

after(killAll);
const dir = mkdtempSync(join(tmpdir(), 'udpcast-sec-'));
const skip = skipUnless('ffmpeg');

async function socket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  return s;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** For `finally`: each process still running is ended by its handle, and given 5 s to exit. */
async function end(...rs: Array<Running | undefined>): Promise<void> {
  for (const r of rs) r?.child.kill('SIGTERM');
  for (const r of rs) if (r) await exited(r, 5000).catch(() => undefined);
}

/** A relay, a sharer publishing to it, and one viewer writing its output; all separate processes. */
async function stream(name: string, seconds: number) {
  const port = await freePort();
  const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard', '--stats-json', join(dir, `${name}-relay.json`)]);
  const out = join(dir, `${name}.h264`);
  const stats = join(dir, `${name}.json`);
  let watch: Running | undefined;
  let share: Running | undefined;
  try {
    await waitFor(() => relay.stderrText().includes('listening'), 5000, 'the relay');
    watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--output', out, '--stats-json', stats]);
    await sleep(500);
    share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--duration', String(seconds), '--no-dashboard']);
    await waitFor(() => /publisher/.test(relay.stderrText()), 8000, 'the publisher');
  } catch (err) {
    await end(share, watch, relay);
    throw err;
  }
  return { port, relay, watch, share, out, stats };
}

async function finish(s: { relay: Running; watch: Running; share: Running }) {
  await exited(s.share, 30_000);
  await sleep(500);
  s.watch.child.kill('SIGTERM');
  await exited(s.watch, 5000);
  s.relay.child.kill('SIGTERM');
  await exited(s.relay, 5000);
}

describe('security', { skip }, () => {
  test('no amplification: a viewer whose later datagrams never arrive gets back no more bytes than its first, and no media', async () => {
    const s = await stream('amp', 4);
    try {
      const spoof = await socket();
      const received: Buffer[] = [];
      spoof.on('message', (m) => received.push(m));
      try {
        // What a real viewer sends first; this "viewer" never answers the challenge (as a forged source cannot).
        const first = serializeRtcp([{ type: 'rr', ssrc: 42, reports: [] }, controlApp({ kind: ControlType.Subscribe, stream: 'main' }, 42)]);
        spoof.send(first, s.port, '127.0.0.1');
        await sleep(3000);
        const bytes = received.reduce((n, b) => n + b.length, 0);
        assert.ok(bytes <= first.length, `relay sent ${bytes} bytes for a ${first.length}-byte datagram`);
        assert.equal(received.filter((b) => isRtp(b)).length, 0, 'no media');
        assert.ok(received.every((b) => isRtcp(b)));
      } finally {
        spoof.close();
      }
      await finish(s);
    } finally {
      await end(s.share, s.watch, s.relay);
    }
  });

  test('a second sharer of the same stream, and forged media, reach no viewer', async () => {
    const s = await stream('hijack', 6);
    try {
      const intruder = udpcast(['share', '--relay', `127.0.0.1:${s.port}`, '--source', 'test', '--size', '320x240', '--no-dashboard']);
      const e = await exited(intruder, 15_000);
      assert.equal(e.code, 1);
      assert.match(intruder.stderrText(), /being published by another sharer/);
      // Forged media: RTP with made-up SSRCs from another address.
      const forger = await socket();
      try {
        for (let i = 0; i < 200; i++) {
          const pkt = serializeRtpToBuffer({ padding: 0, marker: true, payloadType: 96, sequenceNumber: i, timestamp: i * 3000, ssrc: 0xbad00000 + i, csrc: [], payload: Buffer.from([0x65, ...randomBytes(100)]) });
          forger.send(pkt, s.port, '127.0.0.1');
        }
        await sleep(200);
      } finally {
        forger.close();
      }
      await finish(s);
    } finally {
      await end(s.share, s.watch, s.relay);
    }
    const seen = lastStats(readFileSync(s.stats, 'utf8'));
    assert.equal(seen.publisherRestarts, 0, 'the viewer only ever saw the first sharer');
    const relayStats = lastStats(readFileSync(join(dir, 'hijack-relay.json'), 'utf8'));
    assert.ok(relayStats.hijackAttempts >= 1);
    assert.ok(relayStats.unknownSource >= 200);
    assert.equal(decode(s.out, 'h264').errors, '');
  });

  test('40,000 hostile datagrams: the relay stays up, its memory stays bounded, the viewer decodes cleanly', async () => {
    const s = await stream('flood', 12);
    try {
      await sleep(1000);
      const rssBefore = rssKb(s.relay.pid);
      const attacker = await socket();
      const kinds = [
        () => randomBytes(1 + Math.floor(Math.random() * 1400)), // random bytes
        () => Buffer.alloc(0), // empty
        () => randomBytes(65_000), // oversize
        () => { // RTP-shaped, lying CSRC count and extension length
          const b = randomBytes(40);
          b[0] = 0x90 | 0x0f;
          b[1] = 96;
          return b;
        },
        () => { // RTCP-shaped, lying length and count
          const b = randomBytes(24);
          b[0] = 0x9f;
          b[1] = 200 + Math.floor(Math.random() * 7);
          b.writeUInt16BE(0xffff, 2);
          return b;
        },
        () => serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream: 'main' }, 7)]), // unproven subscriptions
        () => serializeRtcp([controlApp({ kind: ControlType.Publish, stream: `s${Math.floor(Math.random() * 1e6)}` }, 7)]), // stream squatting
      ];
      try {
        for (let i = 0; i < 40_000; i++) {
          attacker.send(kinds[i % kinds.length](), s.port, '127.0.0.1');
          if (i % 500 === 499) await sleep(20); // ~20,000 a second: a flood, without starving the test itself
        }
        await sleep(1000);
      } finally {
        attacker.close();
      }
      const rssAfter = rssKb(s.relay.pid);
      assert.ok(rssAfter - rssBefore < 60_000, `relay RSS grew ${rssAfter - rssBefore} kB`);
      process.kill(s.relay.pid, 0); // still running
      await finish(s);
    } finally {
      await end(s.share, s.watch, s.relay);
    }
    const d = decode(s.out, 'h264');
    assert.equal(d.errors, '', 'the viewer decoded cleanly through the flood');
    assert.ok(d.frames > 100);
    const r = lastStats(readFileSync(join(dir, 'flood-relay.json'), 'utf8'));
    assert.ok(r.malformed + r.oversize + r.unknownSource + r.overLimit + r.rateLimited > 10_000, JSON.stringify(r));
    assert.ok(r.streams <= 64, 'stream squatting is capped');
  });
});

describe('keys and encryption', { skip }, () => {
  test('--key: a sharer with the wrong key, or none, is refused and none of its frames reach viewers', async () => {
    const port = await freePort();
    const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--key', 'relay-secret-1', '--no-dashboard', '--stats-json', join(dir, 'key-relay.json')]);
    const out = join(dir, 'key.h264');
    const stats = join(dir, 'key.json');
    let watch: Running | undefined;
    let good: Running | undefined;
    try {
      await waitFor(() => relay.stderrText().includes('listening'), 10_000, 'the relay');
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--output', out, '--stats-json', stats]);
      good = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--key', 'relay-secret-1', '--source', 'test', '--size', '320x240', '--duration', '8', '--no-dashboard']);
      await waitFor(() => /publisher/.test(relay.stderrText()), 10_000, 'the keyed sharer');
      for (const args of [['--key', 'wrong-secret-9'], []]) {
        const bad = udpcast(['share', '--relay', `127.0.0.1:${port}`, ...args, '--source', 'test', '--size', '320x240', '--no-dashboard']);
        const e = await exited(bad, 20_000);
        assert.equal(e.code, 2, 'a key that does not match is a setting to fix');
        assert.match(bad.stderrText(), args.length ? /refused our key: check --key/ : /requires a key: share with --key or --key-file/);
      }
      await exited(good, 30_000);
      await sleep(500);
      watch.child.kill('SIGTERM');
      await exited(watch, 5000);
      relay.child.kill('SIGTERM');
      await exited(relay, 5000);
    } finally {
      await end(good, watch, relay);
    }
    assert.equal(lastStats(readFileSync(stats, 'utf8')).publisherRestarts, 0, 'only the keyed sharer was ever seen');
    assert.ok(lastStats(readFileSync(join(dir, 'key-relay.json'), 'utf8')).authFailures >= 2);
    assert.match(relay.stderrText(), /sharers need --key/);
    assert.match(relay.stderrText(), /refused 127\.0\.0\.1:\d+ \(wrong or missing key\)/);
    const d = decode(out, 'h264');
    assert.equal(d.errors, '');
    assert.ok(d.frames > 100);
  });

  test('--watch-key: only viewers with the key are accepted; others get a clear refusal', async () => {
    const port = await freePort();
    const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--watch-key', 'viewers-key-3', '--no-dashboard']);
    let share: Running | undefined;
    let ok: Running | undefined;
    try {
      await waitFor(() => relay.stderrText().includes('listening'), 10_000, 'the relay');
      share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--duration', '8', '--no-dashboard']);
      await waitFor(() => /publisher/.test(relay.stderrText()), 10_000, 'the sharer');
      for (const args of [[], ['--watch-key', 'not-the-key-1']]) {
        const out = join(dir, `nokey-${args.length}.h264`);
        const w = udpcast(['watch', `127.0.0.1:${port}`, ...args, '--player', 'none', '--no-dashboard', '--output', out]);
        const e = await exited(w, 20_000);
        assert.equal(e.code, 2);
        assert.match(w.stderrText(), /needs the right --watch-key/);
        assert.equal(existsSync(out), false, 'not one byte of video: no file at all');
      }
      const out = join(dir, 'withkey.h264');
      ok = udpcast(['watch', `127.0.0.1:${port}`, '--watch-key', 'viewers-key-3', '--player', 'none', '--no-dashboard', '--duration', '3', '--output', out]);
      assert.equal((await exited(ok, 20_000)).code, 0, ok.stderrText());
      assert.equal(decode(out, 'h264').errors, '');
      assert.ok(decode(out, 'h264').frames > 30);
      await exited(share, 20_000);
      relay.child.kill('SIGTERM');
      await exited(relay, 5000);
    } finally {
      await end(ok, share, relay);
    }
  });

  test('--encrypt on a viewer of a plain stream: refused with a clear message, nothing written', async () => {
    const port = await freePort();
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '320x240', '--duration', '6', '--no-dashboard']);
    let w: Running | undefined;
    try {
      await waitFor(() => share.stderrText().includes('listening'), 10_000, 'the sharer');
      const out = join(dir, 'plain-with-encrypt.h264');
      w = udpcast(['watch', `127.0.0.1:${port}`, '--encrypt', 'expected-secret', '--player', 'none', '--no-dashboard', '--output', out]);
      assert.equal((await exited(w, 20_000)).code, 2);
      assert.match(w.stderrText(), /the stream is not encrypted/);
      assert.equal(existsSync(out), false, 'nothing written: no file at all');
      share.child.kill('SIGTERM');
      await exited(share, 5000);
    } finally {
      await end(w, share);
    }
  });

  test('--encrypt: what crosses relay → viewer decodes to nothing without the key; the viewer with it decodes cleanly', async () => {
    const { ImpairProxy } = await import('../src/impair/proxy.ts');
    const { NO_IMPAIRMENT } = await import('../src/impair/core.ts');
    const { H264Depacketizer } = await import('../src/codecs/h264/depacketize.ts');
    const { parseRtp } = await import('../src/rtp/packet.ts');
    const port = await freePort();
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '320x240', '--encrypt', 'viewers-only-7', '--duration', '8', '--no-dashboard']);
    let watch: Running | undefined;
    try {
      await waitFor(() => share.stderrText().includes('listening'), 10_000, 'the sharer');
      const captured: Buffer[] = [];
      // A tap on the relay → viewer path: what anyone on that path (or the relay itself) could see.
      const tap = await ImpairProxy.start({
        listenPort: 0, listenHost: '127.0.0.1', target: { host: '127.0.0.1', port }, up: NO_IMPAIRMENT, down: NO_IMPAIRMENT, seed: 1,
        onForward: (dir, dgram) => { if (dir === 'down' && isRtp(dgram)) captured.push(Buffer.from(dgram)); },
      });
      try {
        const out = join(dir, 'encrypted.h264');
        watch = udpcast(['watch', `127.0.0.1:${tap.port}`, '--encrypt', 'viewers-only-7', '--player', 'none', '--no-dashboard', '--duration', '4', '--output', out]);
        assert.equal((await exited(watch, 20_000)).code, 0, watch.stderrText());
        const d = decode(out, 'h264');
        assert.equal(d.errors, '');
        assert.ok(d.frames > 60, `${d.frames} frames with the key`);
        assert.ok(captured.length > 300);
        // Without the key: depacketize the captured packets as plain RTP and let FFmpeg try.
        const dep = new H264Depacketizer();
        const frames: Buffer[] = [];
        for (const b of captured) {
          try {
            for (const f of dep.pushAll(parseRtp(b))) frames.push(f.data);
          } catch {
            // a ciphertext that does not even parse is as good as nothing
          }
        }
        const raw = join(dir, 'captured.h264');
        writeFileSync(raw, Buffer.concat(frames));
        assert.equal(decode(raw, 'h264').frames, 0, 'no picture from the captured traffic');
      } finally {
        await tap.close();
      }
      await exited(share, 20_000);
    } finally {
      await end(watch, share);
    }
  });
});

describe('faults', { skip }, () => {
  test('FFmpeg killed on the sharer: restarted with a clear message, the viewer resumes', async () => {
    const s = await stream('ffcrash', 9);
    try {
      await waitFor(() => /ffmpeg started \(pid \d+\)/.test(s.share.stderrText()), 5000, 'ffmpeg');
      await sleep(1500);
      const pid = Number(/ffmpeg started \(pid (\d+)\)/.exec(s.share.stderrText())![1]);
      const before = lastStats(readFileSync(s.stats, 'utf8')).framesComplete;
      process.kill(pid, 'SIGKILL');
      await waitFor(() => /restarting it in/.test(s.share.stderrText()), 5000, 'the restart message');
      await waitFor(() => lastStats(readFileSync(s.stats, 'utf8')).framesComplete > before + 30, 8000, 'frames after the restart');
      await finish(s);
    } finally {
      await end(s.share, s.watch, s.relay);
    }
    assert.equal(decode(s.out, 'h264').errors, '');
  });

  /** The stand-in players open no window, but watch asks for a display before it starts one. */
  const STAND_IN_DISPLAY = ':1234';

  test('closing the ffplay window ends watch with exit 0', async () => {
    const port = await freePort();
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '320x240', '--duration', '8', '--no-dashboard']);
    let watch: Running | undefined;
    try {
      await waitFor(() => share.stderrText().includes('listening'), 10_000, 'the sharer');
      // A stand-in for ffplay whose window a person closes after a moment: it reads, then exits 0.
      const fake = join(dir, 'closing-ffplay');
      writeFileSync(fake, '#!/bin/sh\nhead -c 20000 >/dev/null\nexit 0\n');
      chmodSync(fake, 0o755);
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--no-dashboard'], { FFPLAY_PATH: fake, DISPLAY: STAND_IN_DISPLAY });
      assert.equal((await exited(watch, 15_000)).code, 0, watch.stderrText());
      share.child.kill('SIGTERM');
      await exited(share, 5000);
    } finally {
      await end(watch, share);
    }
  });

  test('ffplay crashing on a viewer: a clear message and a non-zero exit', async () => {
    const port = await freePort();
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '320x240', '--duration', '8', '--no-dashboard']);
    let watch: Running | undefined;
    try {
      await waitFor(() => share.stderrText().includes('listening'), 5000, 'the sharer');
      const fake = join(dir, 'crashing-ffplay');
      writeFileSync(fake, '#!/bin/sh\nhead -c 20000 >/dev/null\necho "fake ffplay: giving up" >&2\nexit 3\n');
      chmodSync(fake, 0o755);
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--no-dashboard'], { FFPLAY_PATH: fake, DISPLAY: STAND_IN_DISPLAY });
      const e = await exited(watch, 15_000);
      assert.notEqual(e.code, 0);
      assert.match(watch.stderrText(), /^the player \(ffplay\) failed: it exited with code 3$/m);
      share.child.kill('SIGTERM');
      await exited(share, 5000);
    } finally {
      await end(watch, share);
    }
  });
});

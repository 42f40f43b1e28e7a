/**
 * The relay's RTSP server (issue 16): the message parser and its limits, then real players as the
 * judges: FFmpeg's RTSP client over UDP and over TCP decodes a udpcast share (picture and sound)
 * with no error, a hostile client does not stop the relay, and a player's TEARDOWN frees its viewer.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { RtspReader, parseTransport, rtspResponse } from '../src/relay/rtsp/message.ts';
import { rtspPath } from '../src/relay/rtsp/server.ts';
import { parameterSets } from '../src/codecs/h264/codec.ts';
import { RTSP_MAX_HEADERS, RTSP_MAX_REQUEST_BYTES } from '../src/defaults.ts';
import { udpcast, killAll, exited, freePort, waitFor, type Running } from './helpers/cli.ts';
import { lastStats } from './helpers/decode.ts';
import { skipUnless } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-rtsp-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

const request = (lines: string[], body = '') => Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1');

describe('RTSP messages', () => {
  test('requests and interleaved frames, whole or cut at every byte', () => {
    const bytes = Buffer.concat([
      request(['OPTIONS rtsp://h:8554/main RTSP/1.0', 'CSeq: 1', 'User-Agent: x']),
      Buffer.from([0x24, 1, 0, 3, 9, 8, 7]),
      request(['ANNOUNCE rtsp://h/main RTSP/1.0', 'CSeq: 2', 'Content-Length: 4'], 'v=0\n'),
    ]);
    const summary = (items: ReturnType<RtspReader['push']>) =>
      items.map((i) => (i.kind === 'request' ? [i.request.method, i.request.uri, i.request.headers.get('cseq'), i.request.body.toString()] : i.kind === 'interleaved' ? [i.channel, [...i.data]] : [i.why]));
    const whole = summary(new RtspReader().push(bytes));
    assert.deepEqual(whole, [['OPTIONS', 'rtsp://h:8554/main', '1', ''], [1, [9, 8, 7]], ['ANNOUNCE', 'rtsp://h/main', '2', 'v=0\n']]);
    for (let cut = 1; cut < bytes.length; cut++) {
      const r = new RtspReader();
      assert.deepEqual(summary([...r.push(bytes.subarray(0, cut)), ...r.push(bytes.subarray(cut))]), whole, `cut at ${cut}`);
    }
  });

  test('limits: a head too long, too many headers, a bad length or line are "bad", and nothing is read after', () => {
    const bad = (b: Buffer) => new RtspReader().push(b).map((i) => i.kind);
    assert.deepEqual(bad(Buffer.alloc(RTSP_MAX_REQUEST_BYTES + 1, 0x41)), ['bad'], 'no end of head in sight');
    assert.deepEqual(bad(request(['OPTIONS * RTSP/1.0', ...Array.from({ length: RTSP_MAX_HEADERS + 1 }, (_, i) => `X-${i}: y`)])), ['bad']);
    assert.deepEqual(bad(request(['OPTIONS * RTSP/1.0', `Content-Length: ${RTSP_MAX_REQUEST_BYTES + 1}`])), ['bad']);
    assert.deepEqual(bad(request(['OPTIONS * RTSP/1.0', 'Content-Length: -1'])), ['bad']);
    assert.deepEqual(bad(request(['GET / HTTP/1.1'])), ['bad']);
    assert.deepEqual(bad(request(['OPTIONS * RTSP/1.0', 'no colon'])), ['bad']);
    const r = new RtspReader();
    assert.deepEqual(r.push(request(['junk'])).map((i) => i.kind), ['bad']);
    assert.deepEqual(r.push(request(['OPTIONS * RTSP/1.0', 'CSeq: 1'])), [], 'a connection gone bad is read no further');
  });

  test('any bytes: items or "bad", never a throw, never more held than the limit', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 8 }), (chunks) => {
        const r = new RtspReader();
        for (const c of chunks) {
          r.push(Buffer.from(c));
          assert.ok(r.pending <= RTSP_MAX_REQUEST_BYTES * 2 + 4 + 65535 + 3000);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('responses echo CSeq and say their length; Transport headers players send', () => {
    assert.equal(rtspResponse(200, '7', [['Public', 'OPTIONS']], 'v=0\r\n').toString(), 'RTSP/1.0 200 OK\r\nCSeq: 7\r\nServer: udpcast\r\nPublic: OPTIONS\r\nContent-Length: 5\r\n\r\nv=0\r\n');
    // FFmpeg, VLC (live555) and GStreamer's forms.
    assert.deepEqual(parseTransport('RTP/AVP/UDP;unicast;client_port=5000-5001'), { kind: 'udp', rtpPort: 5000, rtcpPort: 5001 });
    assert.deepEqual(parseTransport('RTP/AVP;unicast;client_port=6970-6971'), { kind: 'udp', rtpPort: 6970, rtcpPort: 6971 });
    assert.deepEqual(parseTransport('RTP/AVP/TCP;unicast;interleaved=0-1'), { kind: 'tcp', rtpChannel: 0, rtcpChannel: 1 });
    assert.deepEqual(parseTransport('RTP/AVP;multicast;port=5000-5001,RTP/AVP/TCP;unicast;interleaved=2-3'), { kind: 'tcp', rtpChannel: 2, rtcpChannel: 3 }, 'the first this server gives');
    for (const t of [undefined, '', 'RTP/AVP;multicast', 'RTP/SAVP;unicast;client_port=1-2', 'RTP/AVP;unicast;client_port=70000-70001', 'RTP/AVP;unicast;client_port=0-1', 'RTP/AVP/TCP;interleaved=300-301']) {
      assert.equal(parseTransport(t), undefined, String(t));
    }
  });

  test('paths: the stream, and the track a SETUP names', () => {
    assert.deepEqual(rtspPath('rtsp://127.0.0.1:8554/main'), { stream: 'main' });
    assert.deepEqual(rtspPath('rtsp://h/main/'), { stream: 'main' });
    assert.deepEqual(rtspPath('rtsp://h:1/main/trackID=1'), { track: 1, stream: 'main' });
    assert.deepEqual(rtspPath('rtsp://h/team%20a?x=1'), { stream: 'team a' });
    assert.equal(rtspPath('rtsp://h/'), undefined);
    assert.equal(rtspPath('*'), undefined);
  });

  test('sprop-parameter-sets come from a keyframe\'s payloads: STAP-A or single NAL units', () => {
    const rtp = (payload: number[]) => Buffer.from(payload);
    const sps = [0x67, 0x42, 0xc0, 0x1e, 0xda];
    const pps = [0x68, 0xce, 0x3c];
    const stap = [24, 0, sps.length, ...sps, 0, pps.length, ...pps];
    assert.deepEqual(parameterSets([rtp(stap), rtp([0x65, 1])]), { sps: Buffer.from(sps), pps: Buffer.from(pps) });
    assert.deepEqual(parameterSets([rtp(sps), rtp(pps)]), { sps: Buffer.from(sps), pps: Buffer.from(pps) });
    assert.deepEqual(parameterSets([rtp([24, 0, 200, 0x67])]), {}, 'a STAP-A cut short gives nothing');
  });
});

/** A free TCP port on 127.0.0.1. */
async function freeTcpPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** One RTSP exchange on a connection of its own: the response's head and body. */
async function ask(port: number, lines: string[]): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    socket.write(request(lines));
    let text = '';
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (d) => {
        text += d.toString('latin1');
        const head = text.indexOf('\r\n\r\n');
        const length = Number(/Content-Length: (\d+)/.exec(text)?.[1] ?? 0);
        if (head >= 0 && text.length >= head + 4 + length) resolve();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve());
      setTimeout(() => reject(new Error('no RTSP answer in 5 s')), 5000).unref();
    });
    return text;
  } finally {
    socket.destroy();
  }
}

describe('udpcast relay --rtsp-port: real players', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  let relay: Running;
  let share: Running;
  let rtsp: number;
  let stats: string;

  test('a share with sound: ffmpeg over UDP and over TCP decodes 5 s of both tracks with no error', async () => {
    const port = await freePort();
    rtsp = await freeTcpPort();
    stats = join(dir, 'relay.json');
    relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', String(rtsp), '--no-dashboard', '--stats-json', stats]);
    await waitFor(() => relay.stderrText().includes(`rtsp://127.0.0.1:${rtsp}/STREAM`), 10_000, 'the relay to say its RTSP address');
    share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '640x360', '--audio', 'test', '--no-dashboard']);
    await waitFor(() => /publisher/.test(relay.stderrText()), 15_000, 'the sharer to publish');
    const url = `rtsp://127.0.0.1:${rtsp}/main`;
    await waitFor(() => false, 1500, 'a keyframe and some sound').catch(() => undefined);

    const describe = await ask(rtsp, [`DESCRIBE ${url} RTSP/1.0`, 'CSeq: 2', 'Accept: application/sdp']);
    assert.match(describe, /^RTSP\/1\.0 200 OK/);
    assert.match(describe, /m=video 0 RTP\/AVP 96\r\na=rtpmap:96 H264\/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=[0-9a-f]{6};sprop-parameter-sets=[A-Za-z0-9+/=]+,[A-Za-z0-9+/=]+/);
    assert.match(describe, /m=audio 0 RTP\/AVP 111\r\na=rtpmap:111 opus\/48000\/2/);

    for (const transport of ['udp', 'tcp']) {
      const file = join(dir, `${transport}.mkv`);
      const got = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-rtsp_transport', transport, '-i', url, '-t', '5', '-c', 'copy', '-y', file], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(got.status, 0, got.stderr);
      // Judged from the recording: every frame of both tracks decodes, and it lasts 5 s.
      const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.equal(decode.stderr, '', `${transport}: both tracks decode without an error`);
      const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,nb_read_frames', '-count_frames', '-of', 'csv=p=0', file], { encoding: 'utf8' });
      const [video, audio] = probe.stdout.trim().split('\n');
      console.log(`# ${transport}: ${video} / ${audio}`);
      assert.match(video, /^h264,640,\d+$/);
      assert.ok(Number(video.split(',')[2]) >= 5 * 25, `${transport}: ${video}: at least 5 s of 30 fps pictures`);
      assert.match(audio, /^opus,\d+$/);
      assert.ok(Number(audio.split(',')[1]) >= 5 * 90, `${transport}: ${audio}: at least 5 s of 10 ms sound packets`);
    }
  });

  test('hostile input: garbage and an unfinished request are dropped, the relay goes on serving', async () => {
    assert.ok(relay, 'the first test started the relay');
    assert.match(await ask(rtsp, ['\u0001\u0002 not rtsp at all']), /^RTSP\/1\.0 400 Bad Request/);
    assert.match(await ask(rtsp, [`DESCRIBE rtsp://127.0.0.1:${rtsp}/nobody RTSP/1.0`, 'CSeq: 1']), /^RTSP\/1\.0 404/);
    assert.match(await ask(rtsp, [`SETUP rtsp://127.0.0.1:${rtsp}/main/trackID=0 RTSP/1.0`, 'CSeq: 1', 'Transport: RTP/AVP;multicast']), /^RTSP\/1\.0 461/);
    assert.match(await ask(rtsp, [`PLAY rtsp://127.0.0.1:${rtsp}/main RTSP/1.0`, 'CSeq: 1', 'Session: 0123']), /^RTSP\/1\.0 454/);
    assert.match(await ask(rtsp, [`RECORD rtsp://127.0.0.1:${rtsp}/main RTSP/1.0`, 'CSeq: 1']), /^RTSP\/1\.0 405/);
    const slow = net.connect(rtsp, '127.0.0.1');
    slow.on('error', () => undefined);
    slow.write('OPTIONS rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 1\r\n'); // and never the blank line
    try {
      const file = join(dir, 'after.mkv');
      const got = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-rtsp_transport', 'tcp', '-i', `rtsp://127.0.0.1:${rtsp}/main`, '-t', '2', '-c', 'copy', '-y', file], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(got.status, 0, got.stderr);
      const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
      assert.equal(decode.stderr, '');
    } finally {
      slow.destroy();
    }
    await waitFor(() => {
      const s = lastStats(readFileSync(stats, 'utf8'));
      return s.rtsp?.badRequests >= 1 && s.rtsp?.sessionsNow === 0;
    }, 5000, 'the relay to count the bad request, and no session left over');
    const s = lastStats(readFileSync(stats, 'utf8'));
    console.log(`# rtsp counters: ${JSON.stringify(s.rtsp)}`);
    assert.ok(s.rtsp.sessions >= 3, 'each ffmpeg run was a session');
    assert.equal(s.viewers, 0, 'each player\'s TEARDOWN (or its connection closing) freed its viewer');
  });

  test('--rtsp-port 0: no RTSP; --watch-key: players are refused; a taken --rtsp-port is a one-line error', async () => {
    try {
      const port = await freePort();
      const off = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', '0', '--no-dashboard', '--duration', '1']);
      assert.equal((await exited(off, 10_000)).code, 0);
      assert.doesNotMatch(off.stderrText(), /rtsp/);
      const lockedPort = await freeTcpPort();
      const locked = udpcast(['relay', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', String(lockedPort), '--watch-key', 'w-secret-1', '--no-dashboard', '--duration', '4']);
      await waitFor(() => locked.stderrText().includes('refusing players'), 10_000, 'the locked relay');
      assert.match(await ask(lockedPort, [`DESCRIBE rtsp://127.0.0.1:${lockedPort}/main RTSP/1.0`, 'CSeq: 1']), /^RTSP\/1\.0 401/);
      const taken = udpcast(['relay', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', String(rtsp), '--no-dashboard']);
      const r = await exited(taken, 10_000);
      assert.notEqual(r.code, 0);
      assert.equal(taken.stderrText().trim().split('\n').at(-1), `udpcast relay: --rtsp-port ${rtsp} is in use on 127.0.0.1: pick another port, or 0 for no RTSP`);
    } finally {
      share.child.kill('SIGTERM');
      relay.child.kill('SIGTERM');
      await exited(share, 5000).catch(() => undefined);
      await exited(relay, 5000).catch(() => undefined);
    }
  });
});

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
import { catchUpStamps } from '../src/relay/outgoing.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { DIGEST_NONCE_MS, DigestAuth, digestAnswer, parseParams } from '../src/relay/rtsp/digest.ts';
import { createHash } from 'node:crypto';
import { parameterSets } from '../src/codecs/h264/codec.ts';
import { NAL_AUD, nalType, splitAnnexB } from '../src/codecs/h264/annexb.ts';
import { RTSP_MAX_CONNECTIONS, RTSP_MAX_HEADERS, RTSP_MAX_REQUEST_BYTES, RTSP_MAX_SESSIONS_PER_ADDRESS } from '../src/defaults.ts';
import { udpcast, killAll, exited, freePort, waitFor, type Running } from './helpers/cli.ts';
import { lastStats } from './helpers/decode.ts';
import { freeTcpPort } from '../bench/lib.ts';
import { skipUnless } from './helpers/tools.ts';
import { ask, conversation, request } from './helpers/rtsp.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-rtsp-'));

/** The NAL unit types of a recording's picture, in order (FFmpeg copies it out as an H.264 byte stream). */
function nalTypes(file: string): number[] {
  const raw = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-map', '0:v', '-c', 'copy', '-bsf:v', 'h264_mp4toannexb', '-f', 'h264', '-'], { maxBuffer: 256 * 1024 * 1024 });
  assert.equal(raw.status, 0, String(raw.stderr));
  return splitAnnexB(raw.stdout).map(nalType);
}
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});


describe('RTSP messages', () => {
  test('requests and interleaved frames, whole or cut at every byte', () => {
    const bytes = Buffer.concat([
      request(['OPTIONS rtsp://h:8554/main RTSP/1.0', 'CSeq: 1', 'User-Agent: x']),
      Buffer.from([0x24, 1, 0, 3, 9, 8, 7]),
      request(['ANNOUNCE rtsp://h/main RTSP/1.0', 'CSeq: 2', 'Content-Length: 4'], 'v=0\n'),
    ]);
    const summary = (items: ReturnType<RtspReader['push']>) =>
      items.map((i) => (i.kind === 'request' ? [i.request.method, i.request.uri, i.request.headers.get('cseq'), i.request.body.toString()] : i.kind === 'interleaved' ? [i.channel, [...i.data]] : i.kind === 'bad' ? [i.why] : ['response']));
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

  test('Digest parameters as players send them (RFC 2617 §3.2.2)', () => {
    assert.deepEqual(parseParams('username="viewer", realm="udpcast", nonce="1a.ff", uri="rtsp://h:8554/main", response="0a", qop=auth, nc=00000001, cnonce="x,y"'), {
      username: 'viewer', realm: 'udpcast', nonce: '1a.ff', uri: 'rtsp://h:8554/main', response: '0a', qop: 'auth', nc: '00000001', cnonce: 'x,y',
    });
    assert.deepEqual(parseParams('a="q\\"uote", A="second"'), { a: 'q"uote' }, 'a repeated name keeps its first value');
    const auth = new DigestAuth('pw', () => 1_000_000);
    const uri = 'rtsp://h:8554/main';
    assert.equal(auth.check(undefined, 'DESCRIBE', uri), false);
    assert.equal(auth.check('Basic dmlld2VyOnB3', 'DESCRIBE', uri), false, 'Basic is not taken: the password would cross in the clear');
    assert.equal(auth.check(`Digest username="v", realm="udpcast", nonce="0.00000000000000000000000000000000", uri="${uri}", response="00000000000000000000000000000000"`, 'DESCRIBE', uri), false, 'a nonce this relay did not issue');
    // A client's answer computed as RFC 2617 §3.2.2.1 says, with and without qop.
    const nonce = /nonce="([^"]+)"/.exec(auth.challenge())![1];
    const md5 = (x: string) => createHash('md5').update(x).digest('hex');
    const ha1 = md5('viewer:udpcast:pw');
    const plain = (u: string, password = 'pw') => `Digest username="viewer", realm="udpcast", nonce="${nonce}", uri="${u}", response="${md5(`${md5(`viewer:udpcast:${password}`)}:${nonce}:${md5(`DESCRIBE:${u}`)}`)}"`;
    assert.equal(auth.check(plain(uri), 'DESCRIBE', uri), true);
    assert.equal(auth.check(plain('/main'), 'DESCRIBE', uri), true, 'the path of the request URI');
    assert.equal(auth.check(plain('rtsp://h:8554/other'), 'DESCRIBE', uri), false, 'a proof for another stream');
    assert.equal(auth.check(plain(uri, 'wrong'), 'DESCRIBE', uri), false);
    const qop = `Digest username="viewer", realm="udpcast", nonce="${nonce}", uri="${uri}", qop=auth, nc=00000001, cnonce="c0ffee", response="${md5(`${ha1}:${nonce}:00000001:c0ffee:auth:${md5(`DESCRIBE:${uri}`)}`)}"`;
    assert.equal(auth.check(qop, 'DESCRIBE', uri), true);
    assert.equal(auth.check(qop, 'SETUP', uri), false, 'a proof for another method');
    // 32 characters that are not hex (a header is read as latin1): refused, never thrown.
    assert.equal(auth.check(`Digest username="v", realm="udpcast", nonce="${nonce}", uri="${uri}", response="${'\u00e9'.repeat(32)}"`, 'DESCRIBE', uri), false);
    assert.equal(new DigestAuth('pw', () => 1_000_000 + DIGEST_NONCE_MS + 1).check(plain(uri), 'DESCRIBE', uri), false, 'a nonce too old');
    // udpcast sdp's own answer (digest.ts digestAnswer), with qop as the challenge offers it.
    assert.equal(auth.check(digestAnswer(auth.challenge(), 'DESCRIBE', uri, 'pw'), 'DESCRIBE', uri), true);
    assert.equal(auth.check(digestAnswer(auth.challenge(), 'DESCRIBE', uri, 'nope'), 'DESCRIBE', uri), false);
  });

  test('a catch-up is stamped 1 ms a picture before the live edge, oldest first; sound is not a picture', () => {
    const pkt = (pt: number, ts: number) => serializeRtpToBuffer({ padding: 0, marker: false, payloadType: pt, sequenceNumber: 1, timestamp: ts, ssrc: 1, csrc: [], payload: Buffer.from([0x65]) });
    const edge = 100; // the times before it wrap below 0, as RTP times do
    const t = (d: number) => (edge - d) >>> 0;
    const cached = [pkt(96, t(9000)), pkt(96, t(9000)), pkt(111, t(8000)), pkt(96, t(6000)), pkt(96, t(3000)), pkt(96, edge)];
    assert.deepEqual([...catchUpStamps(cached, edge)], [[t(9000), t(270)], [t(6000), t(180)], [t(3000), t(90)]]);
    assert.equal(catchUpStamps(cached, undefined).size, 0);
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


/** False when GStreamer has every element named, else the reason (skipUnless's form). */
function gstMissing(...elements: string[]): string | false {
  const missing = elements.filter((e) => spawnSync('gst-inspect-1.0', [e], { stdio: 'ignore' }).status !== 0);
  if (missing.length === 0) return false;
  const reason = `needs GStreamer elements ${missing.join(', ')} (CI installs gstreamer1.0-plugins-good, gstreamer1.0-libav)`;
  console.log(`# skipped: ${reason}`);
  return reason;
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

    // Over UDP as another player (its User-Agent), over TCP as FFmpeg: only libavformat gets each
    // next picture's delimiter at once (OutgoingStream.pictureEnd), and either way it all decodes.
    for (const transport of ['udp', 'tcp']) {
      const file = join(dir, `${transport}.mkv`);
      const agent = transport === 'udp' ? ['-user_agent', 'LibVLC/3.0.18 (LIVE555 Streaming Media v2022.12.01)'] : [];
      const got = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-rtsp_transport', transport, ...agent, '-i', url, '-t', '5', '-c', 'copy', '-y', file], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(got.status, 0, got.stderr);
      // Judged from the recording: every frame of both tracks decodes, and it lasts 5 s. framemd5,
      // not the null muxer: the catch-up's pictures come stamped a few ms apart (server.ts
      // caughtUp), which the null muxer's frame-rate time base reports as out of order.
      const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.equal(decode.stderr, '', `${transport}: both tracks decode without an error`);
      const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,nb_read_frames', '-count_frames', '-of', 'csv=p=0', file], { encoding: 'utf8' });
      const [video, audio] = probe.stdout.trim().split('\n');
      console.log(`# ${transport}: ${video} / ${audio}`);
      assert.match(video, /^h264,640,\d+$/);
      assert.ok(Number(video.split(',')[2]) >= 5 * 25, `${transport}: ${video}: at least 5 s of 30 fps pictures`);
      const delimiters = nalTypes(file).filter((t) => t === NAL_AUD).length;
      if (transport === 'udp') assert.equal(delimiters, 0, 'another player gets the pictures as the sharer sent them');
      else assert.ok(delimiters >= 50, `${delimiters} delimiters: FFmpeg gets one before each live picture (after 30)`);
      assert.match(audio, /^opus,\d+$/);
      // 100 a second, less the silence the sharer leaves out (DTX: about 20 a second of the beep's).
      assert.ok(Number(audio.split(',')[1]) >= 5 * 70, `${transport}: ${audio}: at least 5 s of 10 ms sound packets`);
    }
  });

  test('GStreamer: rtspsrc ! rtph264depay ! avdec_h264 decodes 5 s of pictures, over UDP and over TCP', { skip: skipUnless('gst-launch-1.0', 'gst-inspect-1.0') || gstMissing('rtspsrc', 'rtph264depay', 'avdec_h264') }, () => {
    assert.ok(relay, 'the first test started the relay');
    for (const protocols of ['udp', 'tcp']) {
      // 150 pictures (5 s at 30 fps), then fakesink ends the pipeline; -e would hide nothing here:
      // a decoding or protocol error makes gst-launch exit non-zero with an ERROR line.
      const got = spawnSync('gst-launch-1.0', ['-q', 'rtspsrc', `location=rtsp://127.0.0.1:${rtsp}/main`, `protocols=${protocols}`, 'latency=0', '!', 'rtph264depay', '!', 'avdec_h264', '!', 'fakesink', 'num-buffers=150'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(got.status, 0, `${protocols}: ${got.stderr}${got.stdout}`);
      assert.doesNotMatch(got.stderr + got.stdout, /ERROR|WARNING/, protocols);
    }
  });

  test('udpcast sdp prints what DESCRIBE gives; a stream nobody shares and a closed port are one-line errors', async () => {
    assert.ok(relay, 'the first test started the relay');
    const sdp = udpcast(['sdp', `127.0.0.1:${rtsp}`, '--stream', 'main']);
    assert.equal((await exited(sdp, 10_000)).code, 0, sdp.stderrText());
    assert.match(Buffer.concat(sdp.stdout).toString(), /^v=0\r\n[\s\S]*m=video 0 RTP\/AVP 96\r\n[\s\S]*m=audio 0 RTP\/AVP 111\r\n/);
    // Not the person's mistake: a failure, exit 1 (as watch's "no sharer published").
    const none = udpcast(['sdp', `127.0.0.1:${rtsp}`, '--stream', 'nobody']);
    assert.equal((await exited(none, 10_000)).code, 1);
    assert.equal(none.stderrText().trim(), `udpcast sdp: 127.0.0.1:${rtsp} has no stream "nobody" now (is its sharer running? --stream names another)`);
    const closed = await freeTcpPort();
    const nothing = udpcast(['sdp', `127.0.0.1:${closed}`]);
    assert.equal((await exited(nothing, 10_000)).code, 1);
    assert.match(nothing.stderrText().trim(), /^udpcast sdp: no RTSP server at 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });

  test('hostile input: garbage and an unfinished request are dropped, the relay goes on serving', async () => {
    assert.ok(relay, 'the first test started the relay');
    assert.match(await ask(rtsp, ['\u0001\u0002 not rtsp at all']), /^RTSP\/1\.0 400 Bad Request/);
    assert.match(await ask(rtsp, [`DESCRIBE rtsp://127.0.0.1:${rtsp}/nobody RTSP/1.0`, 'CSeq: 1']), /^RTSP\/1\.0 404/);
    assert.match(await ask(rtsp, [`SETUP rtsp://127.0.0.1:${rtsp}/main/trackID=0 RTSP/1.0`, 'CSeq: 1', 'Transport: RTP/AVP;multicast']), /^RTSP\/1\.0 461/);
    assert.match(await ask(rtsp, [`PLAY rtsp://127.0.0.1:${rtsp}/main RTSP/1.0`, 'CSeq: 1', 'Session: 0123']), /^RTSP\/1\.0 454/);
    assert.match(await ask(rtsp, [`RECORD rtsp://127.0.0.1:${rtsp}/main RTSP/1.0`, 'CSeq: 1']), /^RTSP\/1\.0 454/, 'RECORD without an ANNOUNCE and SETUP');
    assert.match(await ask(rtsp, [`FLY rtsp://127.0.0.1:${rtsp}/main RTSP/1.0`, 'CSeq: 1']), /^RTSP\/1\.0 405/);
    // At most RTSP_MAX_SESSIONS_PER_ADDRESS sessions from one address (RTSP_MAX_SESSIONS in all):
    // the next SETUP is refused, and room comes back as they end.
    const c = conversation(rtsp);
    try {
      const ids: string[] = [];
      const setup = (n: number) => c.ask([`SETUP rtsp://127.0.0.1:${rtsp}/main/trackID=0 RTSP/1.0`, `CSeq: ${n}`, `Transport: RTP/AVP;unicast;client_port=${40000 + 2 * (n % 1000)}-${40001 + 2 * (n % 1000)}`]);
      for (let n = 0; n < RTSP_MAX_SESSIONS_PER_ADDRESS; n++) {
        const answer = await setup(n);
        const id = /\r\nSession: ([0-9a-f]+);timeout=60/.exec(answer)?.[1];
        assert.ok(id, answer);
        ids.push(id);
      }
      assert.match(await setup(RTSP_MAX_SESSIONS_PER_ADDRESS), /^RTSP\/1\.0 453 Not Enough Bandwidth/, 'one address has its share of the sessions, no more');
      for (const [n, id] of ids.entries()) assert.match(await c.ask([`TEARDOWN rtsp://127.0.0.1:${rtsp}/main RTSP/1.0`, `CSeq: ${n}`, `Session: ${id}`]), /^RTSP\/1\.0 200/);
    } finally {
      c.close();
    }
    const slow = net.connect(rtsp, '127.0.0.1');
    slow.on('error', () => undefined);
    slow.write('OPTIONS rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 1\r\n'); // and never the blank line
    try {
      const file = join(dir, 'after.mkv');
      const got = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-rtsp_transport', 'tcp', '-i', `rtsp://127.0.0.1:${rtsp}/main`, '-t', '2', '-c', 'copy', '-y', file], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(got.status, 0, got.stderr);
      const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
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
    assert.ok(s.rtsp.sessions >= 3 + RTSP_MAX_SESSIONS_PER_ADDRESS, 'each ffmpeg run was a session, and each SETUP above');
    assert.equal(s.rtsp.sessionsRefused, 1);
    assert.equal(s.viewers, 0, 'each player\'s TEARDOWN (or its connection closing) freed its viewer');
  });

  test('--rtsp-port 0: no RTSP; --watch-key: Digest, the key as the password; a taken --rtsp-port is a one-line error', async () => {
    let locked: Running | undefined;
    let lockedShare: Running | undefined;
    try {
      const port = await freePort();
      const off = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', '0', '--no-dashboard', '--duration', '1']);
      assert.equal((await exited(off, 10_000)).code, 0);
      assert.doesNotMatch(off.stderrText(), /rtsp/);
      const lockedPort = await freeTcpPort();
      const lockedUdp = await freePort();
      locked = udpcast(['relay', '--host', '127.0.0.1', '--port', String(lockedUdp), '--rtsp-port', String(lockedPort), '--watch-key', 'w-secret-1', '--no-dashboard']);
      await waitFor(() => locked!.stderrText().includes(`rtsp://viewer:WATCH_KEY@127.0.0.1:${lockedPort}/STREAM`), 10_000, 'the locked relay');
      assert.doesNotMatch(locked.stderrText(), /w-secret-1/, 'the key is never in the log');
      lockedShare = udpcast(['share', '--relay', `127.0.0.1:${lockedUdp}`, '--source', 'test', '--size', '320x240', '--no-dashboard']);
      await waitFor(() => /publisher/.test(locked!.stderrText()), 15_000, 'the sharer to publish');
      await waitFor(() => false, 1500, 'a keyframe').catch(() => undefined);
      const challenge = await ask(lockedPort, [`DESCRIBE rtsp://127.0.0.1:${lockedPort}/main RTSP/1.0`, 'CSeq: 1']);
      assert.match(challenge, /^RTSP\/1\.0 401/);
      assert.match(challenge, /WWW-Authenticate: Digest realm="udpcast", nonce="[0-9a-f.]+", algorithm=MD5, qop="auth"/);
      const play = (password: string) =>
        spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-rtsp_transport', 'tcp', '-i', `rtsp://viewer:${password}@127.0.0.1:${lockedPort}/main`, '-t', '2', '-f', 'framemd5', '-'], { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
      const right = play('w-secret-1');
      assert.equal(right.status, 0, right.stderr);
      assert.equal(right.stderr, '');
      const wrong = play('not-the-key');
      assert.notEqual(wrong.status, 0, 'a wrong password is refused');
      assert.match(wrong.stderr, /401/);
      // udpcast sdp answers the challenge like a player.
      const keyless = udpcast(['sdp', `127.0.0.1:${lockedPort}`]);
      assert.notEqual((await exited(keyless, 10_000)).code, 0);
      assert.equal(keyless.stderrText().trim(), `udpcast sdp: 127.0.0.1:${lockedPort} asks for the relay's --watch-key: give it with --watch-key or --watch-key-file`);
      const keyed = udpcast(['sdp', `127.0.0.1:${lockedPort}`, '--watch-key', 'w-secret-1']);
      assert.equal((await exited(keyed, 10_000)).code, 0, keyed.stderrText());
      assert.match(Buffer.concat(keyed.stdout).toString(), /m=video 0 RTP\/AVP 96/);
      const taken = udpcast(['relay', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', String(rtsp), '--no-dashboard']);
      const r = await exited(taken, 10_000);
      assert.notEqual(r.code, 0);
      assert.equal(taken.stderrText().trim().split('\n').at(-1), `udpcast relay: --rtsp-port ${rtsp} is in use on 127.0.0.1: pick another port, or 0 for no RTSP`);
    } finally {
      for (const r of [share, relay, lockedShare, locked]) r?.child.kill('SIGTERM');
      for (const r of [share, relay, lockedShare, locked]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });
});

describe('RTSP under a flood, and on share\'s embedded relay', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  test('10,000 half-open connections: the cap holds them off, a UDP viewer records with no decode error, players work after', async () => {
    const port = await freePort();
    const rtspPort = await freeTcpPort();
    const stats = join(dir, 'flood.json');
    const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', String(rtspPort), '--no-dashboard', '--stats-json', stats]);
    const sockets: net.Socket[] = [];
    let share: Running | undefined;
    try {
      await waitFor(() => relay.stderrText().includes('rtsp://'), 10_000, 'the relay');
      share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--no-dashboard']);
      await waitFor(() => /publisher/.test(relay.stderrText()), 15_000, 'the sharer to publish');
      const file = join(dir, 'flooded.mkv');
      const watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '6', '--output', file]);
      // Connected and then silent, or part of a request line and then silent (slowloris).
      let opened = 0;
      let refused = 0;
      await Promise.all(Array.from({ length: 10_000 }, (_, i) => new Promise<void>((resolve) => {
        const s = net.connect(rtspPort, '127.0.0.1');
        sockets.push(s);
        s.on('connect', () => {
          opened++;
          if (i % 2) s.write('DESCRIBE rtsp://127.0.0.1/main RTSP/1.0\r\nCSeq: 1\r\n');
          resolve();
        });
        s.on('error', () => {
          refused++;
          resolve();
        });
        s.on('close', () => resolve());
      })));
      assert.equal((await exited(watch, 20_000)).code, 0, watch.stderrText());
      // framemd5, as test/audio.test.ts: it decodes every frame and, unlike the null muxer, takes a
      // recording's first frames' uneven times (two in the same ms at its start) without a line.
      const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.equal(decode.stderr, '', 'the UDP viewer\'s recording decodes without an error');
      const frames = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', file], { encoding: 'utf8' });
      assert.ok(Number(frames.stdout.trim()) >= 4 * 25, `${frames.stdout.trim()} frames in 6 s under the flood`);
      const s = lastStats(readFileSync(stats, 'utf8'));
      console.log(`# flood: ${opened} connected, ${refused} refused; relay: ${JSON.stringify(s.rtsp)}`);
      assert.ok(s.rtsp.connections <= RTSP_MAX_CONNECTIONS, 'no more connections taken than the cap');
      // The rest: closed by the relay as they came (counted), or refused by the kernel's backlog.
      assert.ok(s.rtsp.connectionsDropped + refused >= 8000, 'beyond the cap, connections are closed as they come');
      for (const k of sockets) k.destroy();
      sockets.length = 0;
      // Room again: a player plays.
      await waitFor(() => false, 500, 'the relay to see them close').catch(() => undefined);
      const after = join(dir, 'after-flood.mkv');
      const got = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-rtsp_transport', 'tcp', '-i', `rtsp://127.0.0.1:${rtspPort}/main`, '-t', '2', '-c', 'copy', '-y', after], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(got.status, 0, got.stderr);
      assert.equal(relay.child.exitCode, null, 'the relay is still running');
    } finally {
      for (const k of sockets) k.destroy();
      share?.child.kill('SIGTERM');
      relay.child.kill('SIGTERM');
      if (share) await exited(share, 5000).catch(() => undefined);
      await exited(relay, 5000).catch(() => undefined);
    }
  });

  test('share\'s embedded relay serves RTSP too', async () => {
    const rtspPort = await freeTcpPort();
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', String(rtspPort), '--source', 'test', '--size', '320x240', '--no-dashboard']);
    try {
      await waitFor(() => share.stderrText().includes(`rtsp://127.0.0.1:${rtspPort}/STREAM`), 15_000, 'the sharer to say its RTSP address');
      await waitFor(() => /ffmpeg started/.test(share.stderrText()), 15_000, 'the encoder');
      await waitFor(() => false, 1500, 'a keyframe').catch(() => undefined);
      const probe = spawnSync('ffprobe', ['-v', 'error', '-rtsp_transport', 'tcp', '-show_entries', 'stream=codec_name,width,height', '-of', 'csv=p=0', `rtsp://127.0.0.1:${rtspPort}/main`], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(probe.stderr, '');
      assert.equal(probe.stdout.trim(), 'h264,320,240');
    } finally {
      share.child.kill('SIGTERM');
      await exited(share, 5000).catch(() => undefined);
    }
  });

  test('a share with --encrypt: an RTSP player is told 415, not served ciphertext', async () => {
    const rtspPort = await freeTcpPort();
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', String(rtspPort), '--source', 'test', '--size', '320x240', '--encrypt', 'end-to-end passphrase', '--no-dashboard']);
    try {
      await waitFor(() => /ffmpeg started/.test(share.stderrText()), 15_000, 'the encoder');
      await waitFor(() => false, 1500, 'a keyframe').catch(() => undefined);
      assert.match(await ask(rtspPort, [`DESCRIBE rtsp://127.0.0.1:${rtspPort}/main RTSP/1.0`, 'CSeq: 1']), /^RTSP\/1\.0 415 Unsupported Media Type/);
      await waitFor(() => /rtsp: stream main is end-to-end encrypted \(share --encrypt\): RTSP players cannot decrypt it/.test(share.stderrText()), 5000, 'the sharer to say why');
    } finally {
      share.child.kill('SIGTERM');
      await exited(share, 5000).catch(() => undefined);
    }
  });
});

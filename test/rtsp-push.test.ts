/**
 * --push (issue 16 point 3): the client's reader of what a server sends, its URL, then the client
 * against a server of our own (the handshake as RFC 2326 §10 has it, Digest, the back-off, refusals)
 * and, as the judge, FFmpeg's own RTSP listener recording what `udpcast share --push` sends.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RtspPusher, parsePushUrl, redactUrl } from '../src/relay/rtsp/push.ts';
import { RtspReader, rtspResponse, type RtspItem, type RtspRequest } from '../src/relay/rtsp/message.ts';
import { DigestAuth } from '../src/relay/rtsp/digest.ts';
import { RelayCore } from '../src/relay/core.ts';
import { serializeRtcp } from '../src/transport/rtcp.ts';
import { RTSP_PUSH_MAX_HEADERS, RTSP_PUSH_MAX_RESPONSE_BYTES } from '../src/defaults.ts';
import { UsageError } from '../src/util/errors.ts';
import { udpcast, killAll, exited, freePort, waitFor, sleep, type Running } from './helpers/cli.ts';
import { freeTcpPort } from '../bench/lib.ts';
import { skipUnless } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-push-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

const bytes = (text: string) => Buffer.from(text, 'latin1');
const frame = (channel: number, data: number[]) => Buffer.from([0x24, channel, data.length >> 8, data.length & 0xff, ...data]);
const summary = (items: RtspItem[]) =>
  items.map((i) =>
    i.kind === 'response' ? [i.response.status, i.response.reason, i.response.lines, i.response.body.toString()]
    : i.kind === 'interleaved' ? [i.channel, [...i.data]]
    : i.kind === 'request' ? [i.request.method, i.request.headers.get('cseq')]
    : [i.why],
  );

describe('what an RTSP server sends a pushing client', () => {
  test('responses, interleaved frames between them and a request, whole or cut at every byte', () => {
    const all = Buffer.concat([
      bytes('RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, ANNOUNCE\r\n\r\n'),
      frame(1, [0x81, 0xc9, 0, 1]),
      bytes('RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Basic realm="x"\r\nWWW-Authenticate: Digest realm="x", nonce="n"\r\nContent-Length: 5\r\n\r\nnope!'),
      frame(3, []),
      bytes('SET_PARAMETER rtsp://h/live RTSP/1.0\r\nCSeq: 9\r\n\r\n'),
      bytes('RTSP/1.0 200\r\nCSeq: 3\r\n\r\n'),
    ]);
    const whole = summary(new RtspReader('client').push(all));
    assert.deepEqual(whole, [
      [200, 'OK', [['cseq', '1'], ['public', 'OPTIONS, ANNOUNCE']], ''],
      [1, [0x81, 0xc9, 0, 1]],
      [401, 'Unauthorized', [['cseq', '2'], ['www-authenticate', 'Basic realm="x"'], ['www-authenticate', 'Digest realm="x", nonce="n"'], ['content-length', '5']], 'nope!'],
      [3, []],
      ['SET_PARAMETER', '9'],
      [200, '', [['cseq', '3']], ''],
    ]);
    for (let cut = 1; cut < all.length; cut++) {
      const r = new RtspReader('client');
      assert.deepEqual(summary([...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))]), whole, `cut at ${cut}`);
      assert.equal(r.pending, 0);
    }
    const oneByOne = new RtspReader('client');
    assert.deepEqual(summary([...all].flatMap((b) => oneByOne.push(Buffer.from([b])))), whole, 'a byte at a time');
  });

  test('over the size cap, too many headers, a bad length or garbage: "bad", and nothing is read after', () => {
    const bad = (b: Buffer) => new RtspReader('client').push(b).map((i) => i.kind);
    assert.deepEqual(bad(Buffer.alloc(RTSP_PUSH_MAX_RESPONSE_BYTES + 1, 0x41)), ['bad'], 'no end of head in sight');
    assert.deepEqual(bad(bytes(`RTSP/1.0 200 OK\r\nContent-Length: ${RTSP_PUSH_MAX_RESPONSE_BYTES}\r\n\r\n`)), ['bad'], 'a body past the cap is refused before it comes');
    assert.deepEqual(bad(bytes(`RTSP/1.0 200 OK\r\n${Array.from({ length: RTSP_PUSH_MAX_HEADERS + 1 }, (_, i) => `X-${i}: y`).join('\r\n')}\r\n\r\n`)), ['bad']);
    assert.deepEqual(bad(bytes('RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n')), ['bad']);
    assert.deepEqual(bad(bytes('RTSP/1.0 200 OK\r\nno colon\r\n\r\n')), ['bad']);
    assert.deepEqual(bad(bytes('HTTP/1.1 200 OK\r\n\r\n')), ['bad'], 'not RTSP');
    assert.deepEqual(bad(Buffer.from([0x00, 0xff, 0x10])), ['bad'], 'binary garbage is said at once, not at the cap');
    const r = new RtspReader('client');
    assert.deepEqual(r.push(bytes('\x01junk')).map((i) => i.kind), ['bad']);
    assert.deepEqual(r.push(bytes('RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n')), [], 'a connection gone bad is read no further');
    assert.equal(r.pending, 0, 'and holds nothing');
  });

  test('random bytes: items or "bad", never a throw, never more held than the cap', () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const pieces = ['RTSP/1.0 200 OK\r\n', 'CSeq: 1\r\n', 'Content-Length: 3\r\n', '\r\n', 'abc', '$', '\x00\x04', 'RTSP/1.0 ', '\r\n\r\n'];
    for (let run = 0; run < 300; run++) {
      const r = new RtspReader('client');
      for (let i = 0; i < 20; i++) {
        const chunk = random() < 0.7 ? bytes(pieces[Math.floor(random() * pieces.length)]) : Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)));
        r.push(chunk);
        assert.ok(r.pending <= RTSP_PUSH_MAX_RESPONSE_BYTES + 4 + 65535 + 64);
      }
    }
  });

  test('the URL: credentials and ?transport= kept out of the request URI; a bad one is a person\'s error', () => {
    const t = parsePushUrl('rtsp://me:p%40ss@media.example:8554/live/cam?transport=udp&key=1');
    assert.deepEqual(t, {
      url: 'rtsp://media.example:8554/live/cam?key=1', requestUri: 'rtsp://media.example:8554/live/cam?key=1', base: 'rtsp://media.example:8554/live/cam', query: '?key=1',
      host: 'media.example', port: 8554, user: 'me', password: 'p@ss', transport: 'udp',
    });
    assert.equal(parsePushUrl('rtsp://h/live').port, 554, 'RTSP\'s registered port when none is given');
    assert.equal(parsePushUrl('rtsp://[::1]:9/x').host, '::1');
    assert.equal(parsePushUrl('rtsp://h:9/x').transport, 'tcp');
    for (const bad of ['http://h/live', 'rtsp://', 'rtsp://h:70000/x', 'rtsp://h/x?transport=sctp', 'h:8554/live']) {
      assert.throws(() => parsePushUrl(bad), UsageError, bad);
    }
    assert.throws(() => parsePushUrl('ftp://me:hunter22@h/x'), (e: Error) => !e.message.includes('hunter22'), 'a password is not repeated in the error');
    // A password with '@' or '/' not percent-encoded: the user info runs to the last '@'.
    const odd = parsePushUrl('rtsp://me:p@ss/w0rd@media.example/live');
    assert.deepEqual([odd.url, odd.host, odd.user, odd.password], ['rtsp://media.example/live', 'media.example', 'me', 'p@ss/w0rd']);
    assert.throws(() => parsePushUrl('rtsp://me:p@ss@bad host/x'), (e: Error) => !e.message.includes('p@ss') && e.message.includes('me:***@bad host'));
    assert.equal(redactUrl('team=rtsp://me:p@ss@h:8554/x'), 'team=rtsp://me:***@h:8554/x');
  });
});

/** A stream with a keyframe (an SPS+PPS STAP-A, an IDR) and a sender report in a core of its own. */
function coreWithStream(): { core: RelayCore; feed(): void } {
  const core = new RelayCore();
  const ssrc = 0x11223344;
  assert.equal(core.publishFrom('main', 'test:pub', { address: '127.0.0.1', port: 0 }, ssrc, Date.now(), () => undefined), 'ok');
  let seq = 100;
  let ts = 9000;
  const rtp = (payload: number[], marker: boolean) => {
    const b = Buffer.alloc(12 + payload.length);
    b[0] = 0x80;
    b[1] = (marker ? 0x80 : 0) | 96;
    b.writeUInt16BE(seq++ & 0xffff, 2);
    b.writeUInt32BE(ts, 4);
    b.writeUInt32BE(ssrc, 8);
    Buffer.from(payload).copy(b, 12);
    return b;
  };
  const feed = () => {
    const now = Date.now();
    core.fromPublisher('test:pub', serializeRtcp([{ type: 'sr', ssrc, ntpSec: 1, ntpFrac: 0, rtpTimestamp: ts, packetCount: 1, octetCount: 1, reports: [] }]), now);
    core.fromPublisher('test:pub', rtp([24, 0, 5, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0, 3, 0x68, 0xce, 0x3c], false), now);
    core.fromPublisher('test:pub', rtp([0x65, 0x88, 0x84, 0x00], true), now);
    ts += 3000;
  };
  feed();
  return { core, feed };
}

interface Heard {
  requests: RtspRequest[];
  /** Interleaved frames: channel and the RTP payload type (or RTCP packet type). */
  frames: Array<{ channel: number; type: number }>;
  connections: number[];
}

/**
 * An RTSP server that records, as small as the test needs: `auth` asks for Digest on ANNOUNCE and
 * after, `announce` is its status for ANNOUNCE, `closeAfterRecord` ends each connection once
 * media came.
 */
async function fakeServer(port: number, o: { auth?: DigestAuth; announce?: number; closeAfterRecord?: boolean } = {}) {
  const heard: Heard = { requests: [], frames: [], connections: [] };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    heard.connections.push(Date.now());
    const reader = new RtspReader();
    socket.on('data', (chunk) => {
      for (const item of reader.push(chunk)) {
        if (item.kind === 'bad') return socket.destroy();
        if (item.kind === 'interleaved') {
          heard.frames.push({ channel: item.channel, type: item.channel % 2 ? item.data[1] : item.data[1] & 0x7f });
          if (o.closeAfterRecord) socket.destroy();
          continue;
        }
        if (item.kind !== 'request') return socket.destroy();
        const req = item.request;
        heard.requests.push(req);
        const cseq = req.headers.get('cseq');
        const reply = (status: number, headers: Array<[string, string]> = []) => socket.write(rtspResponse(status, cseq, headers));
        if (req.method !== 'OPTIONS' && o.auth && !o.auth.check(req.headers.get('authorization'), req.method, req.uri)) {
          reply(401, [['WWW-Authenticate', o.auth.challenge()]]);
          continue;
        }
        if (req.method === 'ANNOUNCE') reply(o.announce ?? 200);
        else if (req.method === 'SETUP') reply(200, [['Session', 'abc123;timeout=60'], ['Transport', req.headers.get('transport') ?? '']]);
        else reply(200);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    heard,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function pusher(core: RelayCore, url: string, lines: string[]): RtspPusher {
  const pump = () => {
    const step = () => {
      core.pump(Date.now());
      if (core.pumping) setTimeout(step, 4);
    };
    setTimeout(step, 4);
  };
  return new RtspPusher({ core, stream: 'main', url, pump, log: (l) => lines.push(l), retryMinMs: 200, retryMaxMs: 800 });
}

describe('the push client against a server of our own', () => {
  test('OPTIONS, ANNOUNCE (answered with Digest), SETUP, RECORD, then the cached keyframe and its report interleaved; TEARDOWN at close', async () => {
    const port = await freeTcpPort();
    const server = await fakeServer(port, { auth: new DigestAuth('right-password') });
    const { core } = coreWithStream();
    const lines: string[] = [];
    const p = pusher(core, `rtsp://me:right-password@127.0.0.1:${port}/live`, lines);
    try {
      await waitFor(() => server.heard.frames.some((f) => f.channel === 0) && server.heard.frames.some((f) => f.channel === 1), 5000, 'the keyframe and its sender report');
      const said = server.heard.requests.map((r) => `${r.method} ${r.uri}${r.headers.has('authorization') ? ' (authorized)' : ''}`);
      assert.deepEqual(said, [
        `OPTIONS rtsp://127.0.0.1:${port}/live`,
        `ANNOUNCE rtsp://127.0.0.1:${port}/live`,
        `ANNOUNCE rtsp://127.0.0.1:${port}/live (authorized)`,
        `SETUP rtsp://127.0.0.1:${port}/live/trackID=0 (authorized)`,
        `RECORD rtsp://127.0.0.1:${port}/live (authorized)`,
      ]);
      const [, , announce, setup, record] = server.heard.requests;
      assert.equal(announce.headers.get('content-type'), 'application/sdp');
      assert.match(announce.body.toString(), /m=video 0 RTP\/AVP 96\r\na=rtpmap:96 H264\/90000\r\na=fmtp:96 [^\r]*sprop-parameter-sets=Z0LAHto=,aM48[^\r]*\r\na=control:trackID=0\r\na=sendonly\r\n/);
      assert.equal(setup.headers.get('transport'), 'RTP/AVP/TCP;unicast;interleaved=0-1;mode=record');
      assert.equal(record.headers.get('session'), 'abc123');
      assert.deepEqual([...new Set(server.heard.frames.map((f) => `${f.channel}:${f.type}`))].sort(), ['0:96', '1:200'], 'H.264 RTP on 0, an SR (200) on 1');
      assert.equal(p.status.state, 'publishing');
      assert.ok(p.status.packetsSent >= 3);
      assert.deepEqual(lines, [`push rtsp://127.0.0.1:${port}/live: publishing stream main (RTP interleaved on the RTSP connection)`]);
      await p.close();
      assert.equal(server.heard.requests.at(-1)!.method, 'TEARDOWN');
      assert.equal(core.viewers, 0, 'the push left the relay');
    } finally {
      await p.close();
      await server.close();
    }
  });

  test('the sharer stops: TEARDOWN; a new sharer is announced anew', async () => {
    const port = await freeTcpPort();
    const server = await fakeServer(port);
    const { core, feed } = coreWithStream();
    const lines: string[] = [];
    const p = pusher(core, `rtsp://127.0.0.1:${port}/live`, lines);
    try {
      await waitFor(() => p.status.state === 'publishing', 5000, 'the push');
      core.unpublish('test:pub');
      await waitFor(() => server.heard.requests.at(-1)?.method === 'TEARDOWN', 3000, 'its TEARDOWN');
      assert.equal(p.status.state, 'waiting');
      assert.equal(core.publishFrom('main', 'test:pub', { address: '127.0.0.1', port: 0 }, 0x11223344, Date.now(), () => undefined), 'ok');
      feed();
      await waitFor(() => p.status.state === 'publishing' && server.heard.connections.length === 2, 5000, 'the push of the new sharer');
      assert.deepEqual(lines.slice(1), [
        `push rtsp://127.0.0.1:${port}/live: the stream ended: TEARDOWN; announced again when it is back`,
        `push rtsp://127.0.0.1:${port}/live: publishing again`,
      ]);
    } finally {
      await p.close();
      await server.close();
    }
  });

  test('back-off: refused connections said once, publishing once the server is up, and again after it closes', async () => {
    const port = await freeTcpPort();
    const { core } = coreWithStream();
    const lines: string[] = [];
    const p = pusher(core, `rtsp://127.0.0.1:${port}/live`, lines);
    let server: Awaited<ReturnType<typeof fakeServer>> | undefined;
    try {
      // 200, 400, 800, 800 ms between tries.
      await waitFor(() => p.status.failures >= 3, 5000, 'three refused connections');
      assert.deepEqual(lines, [`push rtsp://127.0.0.1:${port}/live: connection refused, retrying in 0.2 s`], 'one line for the outage');
      assert.equal(p.status.state, 'retrying');
      assert.equal(p.status.lastError, 'connection refused');
      server = await fakeServer(port, { closeAfterRecord: true });
      await waitFor(() => server!.heard.connections.length >= 3, 8000, 'the push to come back after each close');
      const gaps = server.heard.connections.slice(1).map((t, i) => t - server!.heard.connections[i]);
      assert.ok(gaps.every((g) => g >= 150), `each retry waits its back-off: ${gaps.join(', ')} ms`);
      // The back-off goes on doubling (here to its 0.8 s top) across connections that end at once:
      // only a push that lasted the top starts it afresh.
      assert.deepEqual(lines.slice(1, 4), [
        `push rtsp://127.0.0.1:${port}/live: publishing stream main (RTP interleaved on the RTSP connection)`,
        `push rtsp://127.0.0.1:${port}/live: the server closed the connection, retrying in 0.8 s`,
        `push rtsp://127.0.0.1:${port}/live: publishing again`,
      ]);
      assert.ok(p.status.reconnects >= 1);
    } finally {
      await p.close();
      await server?.close();
    }
  });

  test('a wrong password and a refused ANNOUNCE: said clearly, retried on the slow side, the password never logged', async () => {
    const port = await freeTcpPort();
    const server = await fakeServer(port, { auth: new DigestAuth('right-password') });
    const { core } = coreWithStream();
    const lines: string[] = [];
    const p = pusher(core, `rtsp://me:wrong-password@127.0.0.1:${port}/live`, lines);
    const port2 = await freeTcpPort();
    const refusing = await fakeServer(port2, { announce: 403 });
    const lines2: string[] = [];
    const p2 = pusher(core, `rtsp://127.0.0.1:${port2}/live`, lines2);
    try {
      await waitFor(() => lines.length > 0 && lines2.length > 0, 5000, 'both refusals');
      assert.deepEqual(lines, [`push rtsp://127.0.0.1:${port}/live: the server refused user "me" or its password (401), retrying in 0.8 s`]);
      assert.deepEqual(lines2, [`push rtsp://127.0.0.1:${port2}/live: the server refused ANNOUNCE: 403 Forbidden, retrying in 0.8 s`]);
      await sleep(500);
      assert.equal(server.heard.connections.length, 1, 'not tried again at the fast pace');
      assert.ok(!lines.join('\n').includes('wrong-password'));
      assert.equal(core.viewers, 0);
    } finally {
      await p.close();
      await p2.close();
      await server.close();
      await refusing.close();
    }
  });
});

describe('udpcast share --push: FFmpeg\'s RTSP listener records it', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  test('a share with sound pushed for 5 s, to a listener that starts 3 s late: a file with both tracks that decodes, as long as the push', async () => {
    const rtspPort = await freeTcpPort();
    const file = join(dir, 'pushed.mkv');
    const url = `rtsp://127.0.0.1:${rtspPort}/live`;
    let share: Running | undefined;
    let listener: ChildProcess | undefined;
    let listenerErr = '';
    try {
      // --gop 15: a joiner starts at the cached keyframe, at most half a second before the push does.
      share = udpcast(['share', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', '0', '--source', 'test', '--size', '320x240', '--gop', '15', '--audio', 'test', '--push', url, '--no-dashboard']);
      await waitFor(() => share!.stderrText().includes(`push ${url}: connection refused, retrying in 1 s`), 20_000, 'the push to find nobody listening');
      await sleep(3000);
      assert.equal(share.stderrText().match(/connection refused/g)?.length, 1, `said once per outage:\n${share.stderrText()}`);
      listener = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'warning', '-rtsp_flags', 'listen', '-i', url, '-c', 'copy', '-y', file], { stdio: ['ignore', 'ignore', 'pipe'] });
      listener.stderr!.on('data', (d: Buffer) => (listenerErr += d.toString()));
      const listenerExit = new Promise<number | null>((resolve) => listener!.on('exit', (code) => resolve(code)));
      await waitFor(() => share!.stderrText().includes(`push ${url}: publishing stream main`), 20_000, 'the push to reach the listener');
      const from = Date.now();
      await sleep(5000);
      process.kill(share.pid, 'SIGINT');
      const to = Date.now();
      assert.equal((await exited(share, 15_000)).code, 0, share.stderrText());
      // The push's TEARDOWN ends the listener's recording.
      const code = await Promise.race([listenerExit, sleep(10_000).then(() => 'still running')]);
      assert.equal(code, 0, `the listener ends by itself after the TEARDOWN:\n${listenerErr}`);
      const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.equal(decode.stderr, '', 'both tracks decode without an error');
      const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,nb_read_frames:format=duration', '-count_frames', '-of', 'csv=p=0', file], { encoding: 'utf8' });
      const [video, audio, duration] = probe.stdout.trim().split('\n');
      const pushed = (to - from) / 1000;
      console.log(`# pushed ${pushed.toFixed(2)} s; file: ${video} / ${audio} / ${duration} s; listener: ${listenerErr.trim() || '(quiet)'}`);
      assert.match(video, /^h264,\d+$/);
      assert.match(audio, /^opus,\d+$/);
      assert.ok(Math.abs(Number(duration) - pushed) <= 1, `the file lasts ${duration} s, the push ${pushed.toFixed(2)} s`);
      assert.ok(Number(video.split(',')[1]) >= (pushed - 1) * 25, `${video}: about 30 pictures a second`);
      // 100 a second, less the silence the sharer leaves out (DTX: about 20 a second of the beep's).
      assert.ok(Number(audio.split(',')[1]) >= (pushed - 1) * 70, `${audio}: 10 ms sound packets`);
    } finally {
      if (share && share.child.exitCode === null) process.kill(share.pid, 'SIGKILL');
      if (listener?.pid && listener.exitCode === null) process.kill(listener.pid, 'SIGKILL');
    }
  });

  test('one-line errors: --push with --encrypt, and relay --push without STREAM=', async () => {
    const encrypted = udpcast(['share', '--source', 'test', '--encrypt', 'some-passphrase', '--push', 'rtsp://127.0.0.1:1/live', '--no-dashboard']);
    assert.equal((await exited(encrypted, 15_000)).code, 2);
    assert.equal(encrypted.stderrText().trim(), 'udpcast share: --push cannot go with --encrypt: the RTSP server would get encrypted pictures that no player outside udpcast can read');
    const relay = udpcast(['relay', '--port', '0', '--rtsp-port', '0', '--push', 'rtsp://me:hunter22@127.0.0.1:1/live', '--no-dashboard']);
    assert.equal((await exited(relay, 15_000)).code, 2);
    assert.equal(relay.stderrText().trim(), 'udpcast relay: --push must be STREAM=rtsp://HOST[:PORT]/PATH (e.g. main=rtsp://127.0.0.1:8554/live), got "rtsp://me:***@127.0.0.1:1/live"');
  });
});

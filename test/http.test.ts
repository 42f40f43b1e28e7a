/**
 * The relay's HTTP server (issue 17, first part): /streams.json and `udpcast list`, /metrics in
 * Prometheus text agreeing with --stats-json, --watch-key as a token, and its limits.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snakeCase } from '../src/dashboard/metrics.ts';
import { streamsTable } from '../src/apps/list.ts';
import { udpcast, killAll, exited, freePort, waitFor, sleep, type Running } from './helpers/cli.ts';
import { freeTcpPort } from '../bench/lib.ts';
import { skipUnless } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-http-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${path} in 5 s`)));
    req.on('error', reject);
  });
}

/** Prometheus text exposition format 0.0.4: HELP/TYPE comments, then `name{labels} value` lines. */
function parsePrometheus(text: string): Map<string, number> {
  const values = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        assert.match(meta[3], /^(counter|gauge|histogram|summary|untyped)$/, line);
        types.set(meta[2], meta[3]);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    assert.ok(types.has(m[1]), `${m[1]} has no TYPE`);
    if (types.get(m[1]) === 'counter') assert.match(m[1], /_total$/, `counter ${m[1]} ends in _total`);
    values.set(m[1] + (m[2] ?? ''), Number(m[3]));
  }
  return values;
}

describe('what the HTTP server answers, without a network', () => {
  test('figure names as Prometheus names; the list as a table', () => {
    assert.equal(snakeCase('bitrateInKbps'), 'bitrate_in_kbps');
    assert.equal(snakeCase('datagramsIn'), 'datagrams_in');
    const table = streamsTable([{ name: 'team', publisher: '10.0.0.2:4000', codec: 'h264', size: '1280x720', sound: true, bitrateInKbps: 2499.6, packetsIn: 1, packetsOut: 2, viewers: 3, dropped: 0 }]);
    assert.equal(table, 'STREAM  CODEC  SIZE      SOUND  VIEWERS  KBIT/S  PUBLISHER\nteam    h264   1280x720  opus   3        2500    10.0.0.2:4000\n');
  });
});

describe('relay --http: /streams.json, udpcast list, /metrics', { skip: skipUnless('ffmpeg') }, () => {
  let relay: Running;
  let httpPort: number;
  let stats: string;

  test('a share with sound is listed with its codec, size and sound; udpcast list prints it', async () => {
    const port = await freePort();
    httpPort = await freeTcpPort();
    stats = join(dir, 'relay.json');
    relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', '0', '--http', String(httpPort), '--no-dashboard', '--stats-json', stats]);
    await waitFor(() => relay.stderrText().includes(`http://127.0.0.1:${httpPort}/streams.json`), 10_000, 'the relay to say its HTTP address');
    assert.deepEqual(JSON.parse((await get(httpPort, '/streams.json')).body), { streams: [] });
    const share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '640x360', '--audio', 'test', '--duration', '4', '--no-dashboard']);
    try {
      await waitFor(() => /publisher/.test(relay.stderrText()), 15_000, 'the sharer to publish');
      await sleep(2000); // a keyframe cached, and a snapshot taken since
      const answer = await get(httpPort, '/streams.json');
      assert.equal(answer.status, 200);
      assert.match(answer.type, /^application\/json/);
      const [s] = JSON.parse(answer.body).streams;
      assert.deepEqual([s.name, s.codec, s.size, s.sound, s.viewers], ['main', 'h264', '640x360', true, 0]);
      assert.ok(s.bitrateInKbps > 0, JSON.stringify(s));
      const list = udpcast(['list', `127.0.0.1:${httpPort}`]);
      assert.equal((await exited(list, 10_000)).code, 0, list.stderrText());
      assert.match(Buffer.concat(list.stdout).toString(), /^STREAM +CODEC +SIZE +SOUND +VIEWERS +KBIT\/S +PUBLISHER\nmain +h264 +640x360 +opus +0 +\d+ +127\.0\.0\.1:\d+\n$/);
    } finally {
      await exited(share, 15_000).catch(() => share.child.kill('SIGKILL'));
    }
  });

  test('/metrics parses as Prometheus text and agrees with --stats-json', async () => {
    assert.ok(relay, 'the first test started the relay');
    // The share has ended: the relay's counters stand still, so a scrape and a stats line can be compared.
    await sleep(2500);
    const answer = await get(httpPort, '/metrics');
    assert.equal(answer.status, 200);
    assert.match(answer.type, /^text\/plain; version=0\.0\.4/);
    const m = parsePrometheus(answer.body);
    const last = JSON.parse(readFileSync(stats, 'utf8').trim().split('\n').at(-1)!);
    for (const [field, name] of [['datagramsIn', 'udpcast_relay_datagrams_in_total'], ['bytesIn', 'udpcast_relay_bytes_in_total'], ['dropped', 'udpcast_relay_dropped_total'], ['cacheJoins', 'udpcast_relay_cache_joins_total'], ['streams', 'udpcast_relay_streams']]) {
      assert.equal(m.get(name), last[field], `${name} = --stats-json ${field}`);
    }
    assert.ok(m.get('udpcast_relay_datagrams_in_total')! > 100);
  });

  test('bad requests are answered and counted, never hang: another method, a body, no such path, a head too big', async () => {
    assert.ok(relay, 'the first test started the relay');
    assert.equal((await get(httpPort, '/nothing')).status, 404);
    const post = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: httpPort, path: '/streams.json', method: 'POST', headers: { 'Content-Length': '3' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end('abc');
    });
    assert.equal(post, 405);
    assert.equal((await get(httpPort, '/streams.json', { 'X-Big': 'x'.repeat(10_000) })).status, 431);
    // Garbage on a raw connection: 400 and closed.
    const raw = await new Promise<string>((resolve) => {
      const s = net.connect(httpPort, '127.0.0.1', () => s.write('\u0001\u0002 not http\r\n\r\n'));
      let text = '';
      s.on('data', (d) => (text += d.toString('latin1')));
      s.on('close', () => resolve(text));
      s.on('error', () => resolve(text));
    });
    assert.match(raw, /^HTTP\/1\.1 400/);
    assert.equal((await get(httpPort, '/streams.json')).status, 200, 'and it goes on answering');
  });

  test('--watch-key: without it 401, with it as a Bearer token or ?token= the list; udpcast list --watch-key', async () => {
    const key = 'viewers only, please';
    const port = await freeTcpPort();
    const keyed = udpcast(['relay', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', '0', '--http', String(port), '--watch-key', key, '--no-dashboard']);
    try {
      await waitFor(() => keyed.stderrText().includes(`http://127.0.0.1:${port}/streams.json`), 10_000, 'the keyed relay');
      assert.equal((await get(port, '/streams.json')).status, 401);
      assert.equal((await get(port, '/metrics', { Authorization: 'Bearer wrong' })).status, 401);
      assert.equal((await get(port, '/streams.json', { Authorization: `Bearer ${key}` })).status, 200);
      assert.equal((await get(port, `/streams.json?token=${encodeURIComponent(key)}`)).status, 200);
      const refused = udpcast(['list', `127.0.0.1:${port}`]);
      assert.notEqual((await exited(refused, 10_000)).code, 0);
      assert.equal(refused.stderrText().trim(), `udpcast list: 127.0.0.1:${port} asks for the relay's --watch-key: give it with --watch-key or --watch-key-file`);
      const allowed = udpcast(['list', `127.0.0.1:${port}`, '--watch-key', key]);
      assert.equal((await exited(allowed, 10_000)).code, 0, allowed.stderrText());
      assert.equal(Buffer.concat(allowed.stdout).toString(), `no streams on 127.0.0.1:${port} now\n`);
      assert.ok(!keyed.stderrText().includes(key), 'the key is never logged');
    } finally {
      keyed.child.kill('SIGTERM');
      await exited(keyed, 5000).catch(() => keyed.child.kill('SIGKILL'));
    }
  });

  test('a taken --http port given is a one-line error; nothing listening is one for udpcast list', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const r = udpcast(['relay', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', '0', '--http', String(taken), '--no-dashboard']);
      assert.equal((await exited(r, 10_000)).code, 2);
      assert.match(r.stderrText(), new RegExp(`--http ${taken} is in use on 127\\.0\\.0\\.1: pick another port, or 0 for no HTTP`));
    } finally {
      blocker.close();
    }
    const closed = await freeTcpPort();
    const none = udpcast(['list', `127.0.0.1:${closed}`]);
    assert.equal((await exited(none, 10_000)).code, 1, 'a failure, not a mistake: exit 1 as watch');
    assert.match(none.stderrText().trim(), /^udpcast list: no HTTP server at 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    relay.child.kill('SIGTERM');
    await exited(relay, 5000).catch(() => relay.child.kill('SIGKILL'));
  });
});

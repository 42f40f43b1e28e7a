/**
 * What the command line says (issue 12, item 8): every option has a description in --help, every
 * example fits one line at 80 and 100 columns, a value that looks like a negative number reaches
 * its option's check, a repeated option takes its last value, and a bad value from a UDPCAST_*
 * variable is named as that variable. An option's missing value, a URL a command does not speak
 * and a mistyped command are named too, and sdp and list take the URLs a relay prints. Each
 * mistake is one line and exit code 2.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { udpcast, killAll, exited, freePort } from './helpers/cli.ts';
import { nameVariable } from '../src/apps/main.ts';

after(killAll);

const COMMANDS = ['share', 'relay', 'watch', 'sdp', 'list', 'demo', 'impair'];

/** `udpcast ARGS` to its end: exit code and trimmed stderr. */
async function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = udpcast(args, env);
  const e = await exited(r, 15_000);
  return { code: e.code, out: Buffer.concat(r.stdout).toString(), err: r.stderrText().trim() };
}

/** Exit 2 and one line matching `pattern` (as e2e.test.ts's `fails`). */
async function fails(args: string[], pattern: RegExp, env: NodeJS.ProcessEnv = {}) {
  const { code, err } = await run(args, env);
  assert.equal(code, 2, `exit code for ${args.join(' ')}: ${err}`);
  assert.match(err, pattern);
  assert.equal(err.split('\n').length, 1, `one line, got:\n${err}`);
}

/** The lines of one section of yargs's help ("Options:", "Examples:"), up to the blank line after it. */
function section(help: string, title: string): string[] {
  const lines = help.split('\n');
  const start = lines.indexOf(title);
  if (start < 0) return [];
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

describe('--help', { concurrency: 4 }, () => {
  for (const columns of [80, 100]) {
    for (const command of COMMANDS) {
      test(`${command} --help at ${columns} columns: every option described, every example on one line`, async () => {
        // Through a pipe yargs cannot ask the terminal: $COLUMNS sets the width.
        const { code, out } = await run([command, '--help'], { COLUMNS: String(columns) });
        assert.equal(code, 0);
        for (const line of out.split('\n')) assert.ok(line.length <= columns, `wider than ${columns}: ${line}`);
        const options = section(out, 'Options:');
        assert.ok(options.length > 3);
        for (const line of options) {
          const m = /^\s+(?:-\w, )?--([\w-]+)\s+(.*)$/.exec(line);
          if (m) assert.doesNotMatch(m[2], /^\[/, `--${m[1]} has no description`);
          // yargs glues the type to a description that fills the line exactly: "5)[number]".
          assert.doesNotMatch(line, /\S\[(string|number|boolean|array|choices|default)/, `glued: ${line}`);
        }
        const examples = section(out, 'Examples:');
        assert.ok(examples.length > 0, `${command} has examples`);
        // A flag or a pipe wrapped onto a line of its own, or a description on two lines, would
        // start a line with something other than the command.
        for (const line of examples) assert.match(line, /^ {2}udpcast /, `an example wrapped:\n${examples.join('\n')}`);
      });
    }
  }
});

describe('values yargs would misread', () => {
  test('--bitrate -1M names --bitrate and what it takes, not "Unknown arguments: 1, M"', () =>
    fails(['share', '--bitrate', '-1M'], /^udpcast share: --bitrate must be 50k-200M \(e\.g\. 2500k or 4M\), got -1M$/));
  test('the same for a delay', () =>
    fails(['impair', '--listen', '6000', '--to', '127.0.0.1:5004', '--delay', '-10ms'], /^udpcast impair: --delay must be .*got -10ms$/));
  test('--quality with a codec driven by --bitrate is refused, not ignored', () =>
    fails(['share', '--codec', 'h264', '--quality', '5'], /^udpcast share: --quality applies to --codec mjpeg; --codec h264 follows --bitrate$/));
  test('a repeated option takes the last value, as most command lines do', async () => {
    const [first, last] = [await freePort(), await freePort()];
    const { code, err } = await run(['relay', '--host', '127.0.0.1', '--port', String(first), '--port', String(last), '--no-dashboard', '--duration', '0.5']);
    assert.equal(code, 0, err);
    assert.match(err, new RegExp(`listening on 127\\.0\\.0\\.1:${last}\\b`));
    assert.doesNotMatch(err, new RegExp(`${first},${last}`), 'not both as a list');
  });
});

describe('values from UDPCAST_* variables', () => {
  test('UDPCAST_FPS=abc is named, with its text', () =>
    fails(['share'], /^udpcast share: UDPCAST_FPS must be a number 1-120 \(e\.g\. 30 or 29\.97\), got abc$/, { UDPCAST_FPS: 'abc' }));
  test('UDPCAST_PORT=99999 is named', () => fails(['relay'], /^udpcast relay: UDPCAST_PORT must be 0-65535, got 99999$/, { UDPCAST_PORT: '99999' }));
  test('the command line wins over the variable, and is named as typed', () =>
    fails(['share', '--fps', '500'], /^udpcast share: --fps must be a number 1-120 .*got 500$/, { UDPCAST_FPS: 'abc' }));
  test('a choice from a variable says which variable', () =>
    fails(['share'], /^udpcast: Invalid values: Argument: codec, Given: "vp9".*\(from UDPCAST_CODEC\)$/, { UDPCAST_CODEC: 'vp9' }));
  test('nameVariable: only a message about an option that came from a variable changes', () => {
    const env = { UDPCAST_LATENCY: '5ms' };
    const from = { latency: 'UDPCAST_LATENCY' };
    assert.equal(
      nameVariable('--latency must be a whole number 0-10000, got something that is not a number', from, env),
      'UDPCAST_LATENCY must be a whole number 0-10000, got 5ms',
    );
    assert.equal(nameVariable('--port must be 0-65535, got 0', from, env), '--port must be 0-65535, got 0');
    assert.equal(nameVariable('--latency-x must be', from, env), '--latency-x must be', 'a longer option name is another option');
    assert.equal(nameVariable('no display', from, env), 'no display');
  });
});

describe('an option that takes a value, given without one', { concurrency: 4 }, () => {
  // Each of these once fell back to the option's default and went on (share published to
  // 127.0.0.1:5004, watch ran forever). A later value that fails its own check ends the old
  // behaviour at once, so the test is quick either way, and the message says which check ran.
  const cases: Array<[string[], string]> = [
    [['share', '--source', 'test', '--relay', '--duration', '6', '--fps', '0'], 'relay'],
    [['relay', '--port', '--duration', '0'], 'port'],
    [['watch', '127.0.0.1', '--duration', '--player', 'none', '--latency', '-1'], 'duration'],
    [['sdp', '127.0.0.1:1', '--stream', '--watch-key', 'short'], 'stream'],
    [['share', '--fps', '--gop', '0'], 'fps'],
    [['share', '--codec', '--fps', '0'], 'codec'],
    [['impair', '--listen', '6000', '--to', '127.0.0.1:5004', '--loss', '--seed', 'x'], 'loss'],
    // --audio alone is the source's own sound: the option named is the next one.
    [['share', '--source', 'test', '--audio', '--fps', '--gop', '0'], 'fps'],
    // Empty after '=': a string's default (--relay) or a number's 0 (relay --port= listened on a random port).
    [['share', '--source', 'test', '--relay=', '--fps', '0'], 'relay'],
    [['relay', '--port=', '--duration', '1'], 'port'],
  ];
  for (const [args, option] of cases) {
    test(args.join(' '), () => fails(args, new RegExp(`^udpcast: --${option} needs a value \\(udpcast ${args[0]} --help\\)$`)));
  }
});

describe('URLs', { concurrency: 4 }, () => {
  test('watch given an rtsp:// URL says what it is for and what watch takes', () =>
    fails(
      ['watch', 'rtsp://127.0.0.1:18554/main'],
      /^udpcast: rtsp:\/\/127\.0\.0\.1:18554\/main is for RTSP players such as ffplay or VLC .*; watch reads the relay's UDP port: udpcast watch 127\.0\.0\.1\[:PORT\] --stream main /,
    ));
  test("the URL's password is not repeated", () =>
    fails(['watch', 'rtsp://viewer:s3cret-key@127.0.0.1:18554/main'], /^udpcast: rtsp:\/\/viewer:\*\*\*@127\.0\.0\.1:18554\/main is for RTSP players/));
  test('sdp given an http:// URL points to its rtsp:// form', () =>
    fails(['sdp', 'http://127.0.0.1:18080/'], /^udpcast sdp: http:\/\/127\.0\.0\.1:18080\/ is for a browser .*: udpcast sdp rtsp:\/\/127\.0\.0\.1:8554\/STREAM /));
  test('list given an rtsp:// URL points to its http:// form', () =>
    fails(['list', 'rtsp://127.0.0.1:18554/main'], /^udpcast list: rtsp:\/\/127\.0\.0\.1:18554\/main is for RTSP players .*: udpcast list http:\/\/127\.0\.0\.1:8080\/ /));
  test('share --relay given an rtsp:// URL says --relay takes HOST[:PORT]', () =>
    fails(['share', '--source', 'test', '--relay', 'rtsp://127.0.0.1:8554/main', '--fps', '0'], /^udpcast share: rtsp:\/\/127\.0\.0\.1:8554\/main is for RTSP players .*; --relay takes HOST\[:PORT\]/));

  /** An RTSP server on 127.0.0.1 that answers each DESCRIBE with `sdp`, and the request lines it got. */
  async function rtspServer(sdp: string) {
    const requests: string[] = [];
    const server = net.createServer((socket) =>
      socket.on('data', (d) => {
        requests.push(d.toString().split('\r\n')[0]);
        socket.end(`RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: ${Buffer.byteLength(sdp)}\r\n\r\n${sdp}`);
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, requests, port: (server.address() as AddressInfo).port };
  }

  test('sdp takes rtsp://HOST:PORT/STREAM: the stream from the path, unless --stream names another', async () => {
    const sdp = 'v=0\r\ns=udpcast\r\n';
    const rtsp = await rtspServer(sdp);
    try {
      const url = `rtsp://127.0.0.1:${rtsp.port}/team`;
      const fromPath = await run(['sdp', url]);
      assert.equal(fromPath.code, 0, fromPath.err);
      assert.equal(fromPath.out, sdp);
      const given = await run(['sdp', url, '--stream', 'other']);
      assert.equal(given.code, 0, given.err);
      assert.deepEqual(rtsp.requests, [`DESCRIBE ${url} RTSP/1.0`, `DESCRIBE rtsp://127.0.0.1:${rtsp.port}/other RTSP/1.0`]);
    } finally {
      rtsp.server.close();
    }
  });

  test('list takes http://HOST:PORT/?token=KEY as the relay prints it: the token is the --watch-key', async () => {
    const seen: Array<{ url?: string; auth?: string }> = [];
    const server = http.createServer((req, res) => {
      seen.push({ url: req.url, auth: req.headers.authorization });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"streams":[]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const r = await run(['list', `http://127.0.0.1:${port}/?token=watch-key-1`]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, `no streams on 127.0.0.1:${port} now\n`);
      assert.deepEqual(seen, [{ url: '/streams.json', auth: 'Bearer watch-key-1' }]);
    } finally {
      server.close();
    }
  });
});

describe('commands', { concurrency: 4 }, () => {
  test('no command: the message names all seven', () =>
    fails([], /^udpcast: name a command: share, relay, watch, sdp, list, demo or impair \(udpcast --help\)$/));
  test('a mistyped command: the closest one is suggested', () =>
    fails(['shar', '--source', 'test'], /^udpcast: unknown command "shar": did you mean share\? \(udpcast --help\)$/));
  test('a command like none: the commands are named', () =>
    fails(['frobnicate'], /^udpcast: unknown command "frobnicate": name a command: share, relay, watch, sdp, list, demo or impair/));
});

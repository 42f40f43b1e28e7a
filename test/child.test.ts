/**
 * OwnedProcess: a failed start and a later death are different events, stderr comes out in whole
 * lines, kill() is idempotent and escalates, and no child outlives its parent. Driven first by a
 * fake spawn (exact control of every event), then by real `node -e` children.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { PassThrough } from 'node:stream';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { OwnedProcess, liveChildren, killAllChildren, type SpawnFn } from '../src/util/child.ts';

/** A stand-in for ChildProcess: the test decides when it starts, what it prints and how it dies. */
class FakeChild extends EventEmitter {
  pid: number | undefined = 4242;
  stdin = null;
  stdout = new PassThrough();
  stderr = new PassThrough();
  signals: string[] = [];
  /** How the fake reacts to a signal: 'die' exits, 'ignore' does nothing. */
  onSignal: (sig: string) => 'die' | 'ignore' = () => 'die';
  kill(sig: string = 'SIGTERM'): boolean {
    this.signals.push(sig);
    if (this.onSignal(sig) === 'die') setImmediate(() => this.exit(null, sig));
    return true;
  }
  exit(code: number | null, signal: string | null): void {
    this.emit('exit', code, signal);
    this.stdout.end();
    this.stderr.end();
    setImmediate(() => this.emit('close', code, signal));
  }
}

function fakeSpawn(child: FakeChild): { spawn: SpawnFn; calls: unknown[][] } {
  const calls: unknown[][] = [];
  const spawn = ((...args: unknown[]) => {
    calls.push(args);
    return child;
  }) as unknown as SpawnFn;
  return { spawn, calls };
}

/** Records every event of an OwnedProcess in order. */
function record(p: OwnedProcess): unknown[][] {
  const log: unknown[][] = [];
  p.on('started', (pid) => log.push(['started', pid]));
  p.on('failed-to-start', (e) => log.push(['failed-to-start', e.message]));
  p.on('died', (code, signal, expected) => log.push(['died', code, signal, expected]));
  p.on('stderr-line', (l) => log.push(['line', l]));
  return log;
}

const tick = () => new Promise((r) => setImmediate(r));

describe('OwnedProcess with a fake spawn', () => {
  test('stdio: stdin ignored, stdout and stderr piped; the argv passed through unchanged', () => {
    const child = new FakeChild();
    const { spawn, calls } = fakeSpawn(child);
    const p = new OwnedProcess({ command: '/opt/ffmpeg', args: ['-i', 'x'], spawn });
    const [cmd, args, opts] = calls[0] as [string, string[], { stdio: string[] }];
    assert.equal(cmd, '/opt/ffmpeg');
    assert.deepEqual(args, ['-i', 'x']);
    assert.deepEqual(opts.stdio, ['ignore', 'pipe', 'pipe']);
    assert.equal(p.name, 'ffmpeg');
    child.exit(0, null);
  });

  test('failed to start (ENOENT): one failed-to-start, never died; kill() resolves at once', async () => {
    const child = new FakeChild();
    child.pid = undefined;
    const p = new OwnedProcess({ command: '/no/ffmpeg', args: [], spawn: fakeSpawn(child).spawn });
    const log = record(p);
    const err = Object.assign(new Error('spawn /no/ffmpeg ENOENT'), { code: 'ENOENT' });
    child.emit('error', err);
    child.emit('close', -2, null); // node follows a failed spawn with close(-2)
    await tick();
    assert.deepEqual(log, [['failed-to-start', 'ffmpeg failed to start: /no/ffmpeg not found']]);
    await p.kill();
    assert.deepEqual(child.signals, []);
    assert.equal(p.running, false);
  });

  test('started, then died later: started(pid) and died(code) once each, output drained first', async () => {
    const child = new FakeChild();
    const p = new OwnedProcess({ command: 'ffmpeg', args: [], spawn: fakeSpawn(child).spawn });
    const log = record(p);
    child.emit('spawn');
    assert.equal(p.running, true);
    child.stderr.write('last words\n');
    await tick();
    child.exit(1, null);
    await once(p, 'died');
    assert.deepEqual(log, [['started', 4242], ['line', 'last words'], ['died', 1, null, false]]);
    assert.equal(p.running, false);
  });

  test('stderr: lines split across chunks, CR/LF/CRLF endings, UTF-8 split mid-character, last partial line at death', async () => {
    const child = new FakeChild();
    const p = new OwnedProcess({ command: 'ffmpeg', args: [], spawn: fakeSpawn(child).spawn });
    const lines: string[] = [];
    p.on('stderr-line', (l) => lines.push(l));
    child.emit('spawn');
    const cafe = Buffer.from('café\n'); // é is c3 a9
    for (const chunk of [Buffer.from('hel'), Buffer.from('lo\nwor'), Buffer.from('ld\r\n'), Buffer.from('a\rb\n\n'), cafe.subarray(0, 4), cafe.subarray(4), Buffer.from('tail')]) {
      child.stderr.write(chunk);
      await tick();
    }
    child.exit(1, null);
    await once(p, 'died');
    assert.deepEqual(lines, ['hello', 'world', 'a', 'b', 'café', 'tail']);
  });

  test('kill() is idempotent: one SIGTERM, one promise, died reports it as expected', async () => {
    const child = new FakeChild();
    const p = new OwnedProcess({ command: 'ffmpeg', args: [], spawn: fakeSpawn(child).spawn });
    const log = record(p);
    child.emit('spawn');
    const a = p.kill();
    const b = p.kill();
    assert.equal(a, b);
    await a;
    await p.kill();
    assert.deepEqual(child.signals, ['SIGTERM']);
    assert.deepEqual(log.at(-1), ['died', null, 'SIGTERM', true]);
  });

  test('kill() escalates to SIGKILL when SIGTERM is ignored', async () => {
    const child = new FakeChild();
    child.onSignal = (sig) => (sig === 'SIGKILL' ? 'die' : 'ignore');
    const p = new OwnedProcess({ command: 'ffmpeg', args: [], spawn: fakeSpawn(child).spawn, killGraceMs: 30 });
    const log = record(p);
    child.emit('spawn');
    await p.kill();
    assert.deepEqual(child.signals, ['SIGTERM', 'SIGKILL']);
    assert.deepEqual(log.at(-1), ['died', null, 'SIGKILL', true]);
  });
});

describe('OwnedProcess with real children', () => {
  const node = process.execPath;
  const leftovers: number[] = [];
  after(() => {
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  test('a missing binary: failed-to-start with ENOENT as the cause, no died', async () => {
    const p = new OwnedProcess({ command: '/nonexistent/udpcast-ffmpeg', args: [] });
    const log = record(p);
    const [err] = (await once(p, 'failed-to-start')) as [Error];
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT');
    await tick();
    await tick();
    assert.deepEqual(log, [['failed-to-start', 'udpcast-ffmpeg failed to start: /nonexistent/udpcast-ffmpeg not found']]);
  });

  test('a child that runs and exits: started, its stderr lines (written in pieces), died(3)', async () => {
    const script = `
      process.stderr.write('first li');
      setTimeout(() => process.stderr.write('ne\\nsecond line\\nthi'), 30);
      setTimeout(() => { process.stderr.write('rd'); process.exit(3); }, 60);`;
    const p = new OwnedProcess({ command: node, args: ['-e', script], name: 'node' });
    const log = record(p);
    if (p.pid) leftovers.push(p.pid);
    await once(p, 'died');
    assert.deepEqual(log, [['started', p.pid], ['line', 'first line'], ['line', 'second line'], ['line', 'third'], ['died', 3, null, false]]);
  });

  test('a child ignoring SIGTERM is SIGKILLed after the grace period; kill() twice is one kill', async () => {
    const script = `process.on('SIGTERM', () => console.error('ignoring SIGTERM')); console.error('ready'); setInterval(() => {}, 1000);`;
    const p = new OwnedProcess({ command: node, args: ['-e', script], name: 'node', killGraceMs: 300 });
    if (p.pid) leftovers.push(p.pid);
    const log = record(p);
    try {
      await once(p, 'stderr-line'); // 'ready': its SIGTERM handler is installed
      assert.equal(liveChildren() >= 1, true);
      const t0 = Date.now();
      await Promise.all([p.kill(), p.kill()]);
      assert.ok(Date.now() - t0 >= 250, 'waited for the grace period');
      assert.deepEqual(log.filter((e) => e[0] === 'line'), [['line', 'ready'], ['line', 'ignoring SIGTERM']]);
      assert.deepEqual(log.at(-1), ['died', null, 'SIGKILL', true]);
      assert.throws(() => process.kill(p.pid!, 0), { code: 'ESRCH' });
    } finally {
      await p.kill(); // idempotent: the same kill, when the test got that far
    }
  });

  test('killAllChildren ends every live child; the registry empties', async () => {
    const ps = [1, 2].map(() => new OwnedProcess({ command: node, args: ['-e', 'setInterval(() => {}, 1000)'], name: 'node' }));
    try {
      await Promise.all(ps.map((p) => once(p, 'started')));
      for (const p of ps) leftovers.push(p.pid!);
      assert.equal(liveChildren(), 2);
      await killAllChildren();
      assert.equal(liveChildren(), 0);
      for (const p of ps) assert.throws(() => process.kill(p.pid!, 0), { code: 'ESRCH' });
    } finally {
      await Promise.all(ps.map((p) => p.kill()));
    }
  });

  test('a parent killed with SIGTERM takes its children with it', { skip: process.platform === 'win32' }, async () => {
    const childModule = fileURLToPath(new URL('../src/util/child.ts', import.meta.url));
    const parentScript = `
      import { OwnedProcess } from ${JSON.stringify(childModule)};
      const p = new OwnedProcess({ command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'] });
      p.on('started', (pid) => console.log(pid));
      setInterval(() => {}, 1000);`;
    const parent = spawn(node, ['--import', 'tsx', '--input-type=module', '-e', parentScript], { stdio: ['ignore', 'pipe', 'inherit'] });
    leftovers.push(parent.pid!);
    const [data] = (await once(parent.stdout, 'data')) as [Buffer];
    const grandchild = Number(String(data).trim());
    leftovers.push(grandchild);
    assert.ok(grandchild > 0);
    process.kill(grandchild, 0); // alive now
    parent.kill('SIGTERM');
    const [code] = await once(parent, 'exit');
    assert.equal(code, 143, 'exits as SIGTERM would (128 + 15) once its children are gone');
    assert.throws(() => process.kill(grandchild, 0), { code: 'ESRCH' });
  });
});

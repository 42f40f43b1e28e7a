// The real screen path: x11grab on a virtual X server (Xvfb). A solid root window must arrive at the
// viewer as that colour, and a change of colour on the screen must arrive too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, udpcast, killAll, exited, freePort, sleep, waitFor } from './helpers/cli.ts';
import { decode, meanColours } from './helpers/decode.ts';
import { skipUnless } from './helpers/tools.ts';

after(killAll);
const dir = mkdtempSync(join(tmpdir(), 'udpcast-x11-'));

function freeDisplay(): number {
  for (let n = 90 + Math.floor(Math.random() * 100); ; n++) {
    if (!existsSync(`/tmp/.X11-unix/X${n}`) && !existsSync(`/tmp/.X${n}-lock`)) return n;
  }
}

const close = (c: number[], want: number[], tol = 40) => c.every((v, i) => Math.abs(v - want[i]) <= tol);

test('x11grab under Xvfb: the screen colour, then a change of it, arrive at the viewer', { skip: skipUnless('ffmpeg', 'Xvfb', 'xsetroot') }, async () => {
  const n = freeDisplay();
  const display = `:${n}`;
  const xvfb = start('Xvfb', [display, '-screen', '0', '320x240x24', '-noreset', '-nolisten', 'tcp']);
  await waitFor(() => existsSync(`/tmp/.X11-unix/X${n}`), 10_000, 'Xvfb');
  const setRoot = (colour: string) => {
    const r = spawnSync('xsetroot', ['-display', display, '-solid', colour], { timeout: 5000 });
    assert.equal(r.status, 0, `xsetroot: ${r.stderr}`);
  };
  setRoot('#ff0000');
  const port = await freePort();
  const out = join(dir, 'screen.h264');
  const watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '8', '--output', out]);
  const share = udpcast(
    ['share', '--source', 'screen', '--display', display, '--host', '127.0.0.1', '--port', String(port), '--fps', '15', '--gop', '15', '--duration', '7', '--no-dashboard'],
    { DISPLAY: display },
  );
  await sleep(3500);
  setRoot('#0000ff');
  assert.equal((await exited(share, 15_000)).code, 0, share.stderrText());
  assert.equal((await exited(watch, 15_000)).code, 0, watch.stderrText());
  xvfb.child.kill('SIGTERM');

  const d = decode(out, 'h264');
  assert.equal(d.errors, '');
  assert.ok(d.frames >= 30, `only ${d.frames} frames`);
  const colours = meanColours(out, 'h264');
  assert.ok(close(colours[0], [255, 0, 0]), `first frame is red, got ${colours[0]}`);
  const last = colours[colours.length - 1];
  assert.ok(close(last, [0, 0, 255]), `last frame is blue, got ${last}`);
  const firstBlue = colours.findIndex((c) => close(c, [0, 0, 255]));
  assert.ok(colours.slice(firstBlue).every((c) => close(c, [0, 0, 255])), 'once blue, it stays blue');
});

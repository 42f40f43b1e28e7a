/**
 * The FFmpeg command line for `udpcast share`, per platform and encoder, as plain argv arrays: what
 * a person would type, so a reviewer can check each flag against FFmpeg's documentation.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildShareArgs, resolveH264Encoder, type EncodeOptions } from '../src/encode/ffmpeg-args.ts';
import { captureInputArgs, parseRegion, type CaptureOptions } from '../src/capture/source.ts';
import { locateFfmpeg, locateFfplay, ffmpegHasFilter } from '../src/encode/locate.ts';
import { UsageError } from '../src/util/errors.ts';
import { skipUnless, which } from './helpers/tools.ts';

const GLOBAL = ['-hide_banner', '-loglevel', 'warning', '-nostats', '-nostdin'];
const LOW_LATENCY_IN = ['-fflags', 'nobuffer', '-probesize', '32', '-analyzeduration', '0'];
const X11_ENV = { DISPLAY: ':0' };

const h264: EncodeOptions = { codec: 'h264', bitrateKbps: 2500, fps: 30, gop: 60, quality: 5 };
const mjpeg: EncodeOptions = { codec: 'mjpeg', bitrateKbps: 2500, fps: 30, gop: 60, quality: 5 };
const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency'];
const RATE = ['-bf', '0', '-g', '60', '-b:v', '2500k', '-maxrate', '2500k', '-bufsize', '1250k'];
const FLV_OUT = ['-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', 'pipe:1'];
const MJPEG_OUT = ['-c:v', 'mjpeg', '-huffman', '0', '-q:v', '5', '-pix_fmt', 'yuvj420p', '-threads', '1', '-f', 'mjpeg', '-flush_packets', '1', 'pipe:1'];
const MAP = ['-map', '0:v:0', '-an', '-sn'];

function linux(o: Partial<CaptureOptions> = {}): CaptureOptions {
  return { source: 'screen', fps: 30, platform: 'linux', env: X11_ENV, ...o };
}

describe('capture input per platform', () => {
  test('linux x11grab: whole screen of $DISPLAY, cursor drawn', () => {
    assert.deepEqual(captureInputArgs(linux()), [
      ...LOW_LATENCY_IN, '-f', 'x11grab', '-draw_mouse', '1', '-framerate', '30', '-i', ':0',
    ]);
  });

  test('linux x11grab: --display and --region become -video_size and the +X,Y offset', () => {
    assert.deepEqual(captureInputArgs(linux({ display: ':99', region: { width: 640, height: 480, x: 10, y: 20 } })), [
      ...LOW_LATENCY_IN, '-f', 'x11grab', '-draw_mouse', '1', '-framerate', '30',
      '-video_size', '640x480', '-i', ':99+10,20',
    ]);
  });

  test('linux without any display: a one-line UsageError naming --display and --source test', () => {
    assert.throws(() => captureInputArgs(linux({ env: {} })), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /--display :N/);
      assert.match(e.message, /--source test/);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
  });

  test('pure Wayland (no DISPLAY): the error says what works instead', () => {
    const env = { XDG_SESSION_TYPE: 'wayland', WAYLAND_DISPLAY: 'wayland-0' };
    assert.throws(() => captureInputArgs(linux({ env })), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /Wayland/);
      assert.match(e.message, /XWayland|X11 session/);
      assert.match(e.message, /--source test/);
      assert.match(e.message, /PipeWire/);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
    // With XWayland running (DISPLAY set) capture goes through x11grab as usual.
    assert.deepEqual(captureInputArgs(linux({ env: { ...env, DISPLAY: ':1' } })).slice(-2), ['-i', ':1']);
    // An explicit --display is taken at its word.
    assert.deepEqual(captureInputArgs(linux({ env, display: ':5' })).slice(-2), ['-i', ':5']);
  });

  test('win32 without ddagrab: gdigrab of the desktop with the region as offsets and size', () => {
    const o: CaptureOptions = { source: 'screen', fps: 15, platform: 'win32', env: {}, hasDdagrab: false };
    assert.deepEqual(captureInputArgs(o), [...LOW_LATENCY_IN, '-f', 'gdigrab', '-draw_mouse', '1', '-framerate', '15', '-i', 'desktop']);
    assert.deepEqual(captureInputArgs({ ...o, region: { width: 800, height: 600, x: 100, y: 50 } }), [
      ...LOW_LATENCY_IN, '-f', 'gdigrab', '-draw_mouse', '1', '-framerate', '15',
      '-offset_x', '100', '-offset_y', '50', '-video_size', '800x600', '-i', 'desktop',
    ]);
  });

  test('win32 with ddagrab: Desktop Duplication through lavfi, downloaded to system memory', () => {
    const o: CaptureOptions = { source: 'screen', fps: 30, platform: 'win32', env: {}, hasDdagrab: true };
    assert.deepEqual(captureInputArgs(o), [
      ...LOW_LATENCY_IN, '-f', 'lavfi', '-i', 'ddagrab=framerate=30:draw_mouse=1,hwdownload,format=bgra',
    ]);
    assert.deepEqual(captureInputArgs({ ...o, region: { width: 640, height: 360, x: 8, y: 16 } }), [
      ...LOW_LATENCY_IN, '-f', 'lavfi',
      '-i', 'ddagrab=framerate=30:draw_mouse=1:video_size=640x360:offset_x=8:offset_y=16,hwdownload,format=bgra',
    ]);
  });

  test('darwin avfoundation: screen index, no audio, cursor captured; region cropped by filter', () => {
    const o: CaptureOptions = { source: 'screen', fps: 30, platform: 'darwin', env: {} };
    assert.deepEqual(captureInputArgs(o), [
      ...LOW_LATENCY_IN, '-f', 'avfoundation', '-capture_cursor', '1', '-framerate', '30', '-i', '1:none',
    ]);
    assert.deepEqual(captureInputArgs({ ...o, display: '2' }).slice(-2), ['-i', '2:none']);
    const args = buildShareArgs({ ...o, region: { width: 640, height: 480, x: 4, y: 6 } }, h264);
    assert.deepEqual(args.slice(args.indexOf('-vf'), args.indexOf('-vf') + 2), ['-vf', 'crop=640:480:4:6']);
  });

  test('--source test: a paced lavfi pattern at --size (default 1280x720), same on every platform', () => {
    for (const platform of ['linux', 'win32', 'darwin'] as const) {
      assert.deepEqual(captureInputArgs({ source: 'test', fps: 4, platform, env: {} }), [
        '-re', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=4',
      ]);
    }
    assert.deepEqual(captureInputArgs({ source: 'test', fps: 25, size: { width: 320, height: 240 }, env: {} }), [
      '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    ]);
  });

  test('any other --source is an FFmpeg input, read at its native rate', () => {
    assert.deepEqual(captureInputArgs({ source: 'clip.mp4', fps: 30, env: {} }), ['-re', '-fflags', 'nobuffer', '-i', 'clip.mp4']);
  });
});

describe('whole argv', () => {
  test('linux screen, libx264: capture, first video stream only, rate, encoder, FLV on stdout', () => {
    assert.deepEqual(buildShareArgs(linux(), h264), [
      ...GLOBAL,
      ...LOW_LATENCY_IN, '-f', 'x11grab', '-draw_mouse', '1', '-framerate', '30', '-i', ':0',
      ...MAP, '-r', '30',
      ...X264, ...RATE, '-pix_fmt', 'yuv420p',
      ...FLV_OUT,
    ]);
  });

  test('--size scales a screen; the test pattern is generated at that size instead', () => {
    const size = { width: 1280, height: 720 };
    const screen = buildShareArgs(linux(), { ...h264, size });
    assert.deepEqual(screen.slice(screen.indexOf('-vf'), screen.indexOf('-vf') + 2), ['-vf', 'scale=1280:720']);
    const pattern = buildShareArgs({ source: 'test', fps: 10, env: {} }, { ...h264, fps: 10, size: { width: 640, height: 360 } });
    assert.ok(!pattern.includes('-vf'));
    assert.ok(pattern.includes('testsrc2=size=640x360:rate=10'));
  });

  test('mjpeg: standard Huffman tables, quality, full-range 4:2:0, one thread, JPEGs on stdout', () => {
    assert.deepEqual(buildShareArgs({ source: 'test', fps: 10, env: {}, size: { width: 320, height: 240 } }, { ...mjpeg, fps: 10 }), [
      ...GLOBAL, '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10', ...MAP, '-r', '10', ...MJPEG_OUT,
    ]);
  });

  test('each hardware encoder has its own low-latency flags', () => {
    const tail = (enc: string, capture = linux()) => {
      const a = buildShareArgs(capture, { ...h264, encoder: enc });
      return a.slice(a.indexOf('-r') + 2, a.length - FLV_OUT.length);
    };
    assert.deepEqual(tail('h264_nvenc'), [
      '-c:v', 'h264_nvenc', '-preset', 'p1', '-tune', 'ull', '-zerolatency', '1', '-delay', '0', '-rc', 'cbr', ...RATE, '-pix_fmt', 'yuv420p',
    ]);
    assert.deepEqual(tail('h264_qsv'), [
      '-c:v', 'h264_qsv', '-preset', 'veryfast', '-async_depth', '1', '-look_ahead', '0', ...RATE, '-pix_fmt', 'nv12',
    ]);
    assert.deepEqual(tail('h264_videotoolbox', { source: 'screen', fps: 30, platform: 'darwin', env: {} }), [
      '-c:v', 'h264_videotoolbox', '-realtime', '1', '-allow_sw', '1', ...RATE, '-pix_fmt', 'yuv420p',
    ]);
    assert.deepEqual(tail('h264_vaapi'), ['-c:v', 'h264_vaapi', '-rc_mode', 'CBR', ...RATE]);
    assert.deepEqual(tail('libx264'), [...X264, ...RATE, '-pix_fmt', 'yuv420p']);
    // Short names resolve to the same encoders.
    assert.equal(resolveH264Encoder('nvenc'), 'h264_nvenc');
    assert.equal(resolveH264Encoder('VAAPI'), 'h264_vaapi');
    assert.equal(resolveH264Encoder(undefined), 'libx264');
  });

  test('vaapi: the device is a global option before the input, frames uploaded after scaling', () => {
    const a = buildShareArgs(linux({ env: { DISPLAY: ':0', UDPCAST_VAAPI_DEVICE: '/dev/dri/renderD129' } }), {
      ...h264, encoder: 'h264_vaapi', size: { width: 1280, height: 720 },
    });
    assert.deepEqual(a.slice(0, GLOBAL.length + 2), [...GLOBAL, '-vaapi_device', '/dev/dri/renderD129']);
    assert.ok(a.indexOf('-vaapi_device') < a.indexOf('-i'));
    assert.deepEqual(a.slice(a.indexOf('-vf'), a.indexOf('-vf') + 2), ['-vf', 'scale=1280:720,format=nv12,hwupload']);
    assert.ok(!a.includes('-pix_fmt'));
  });

  test('an unknown --encoder, or one with mjpeg, is a UsageError naming the choices', () => {
    assert.throws(() => buildShareArgs(linux(), { ...h264, encoder: 'h265_magic' }), (e: Error) => e instanceof UsageError && /libx264, h264_nvenc/.test(e.message));
    assert.throws(() => buildShareArgs(linux(), { ...mjpeg, encoder: 'h264_nvenc' }), UsageError);
  });

  test('bitrate sets -b:v, -maxrate and a half-second -bufsize', () => {
    const a = buildShareArgs(linux(), { ...h264, bitrateKbps: 4000 });
    assert.deepEqual(a.slice(a.indexOf('-b:v'), a.indexOf('-b:v') + 6), ['-b:v', '4000k', '-maxrate', '4000k', '-bufsize', '2000k']);
  });

  test('real FFmpeg accepts the test-source argv for both codecs', { skip: skipUnless('ffmpeg') }, () => {
    for (const enc of [h264, mjpeg]) {
      const args = buildShareArgs({ source: 'test', fps: 30, env: {} }, { ...enc, size: { width: 160, height: 96 } });
      args.splice(args.lastIndexOf('-f'), 0, '-frames:v', '3');
      const r = spawnSync(which('ffmpeg')!, args, { timeout: 10_000 });
      assert.equal(r.status, 0, String(r.stderr));
      assert.ok(r.stdout.length > 100, `${enc.codec}: ${r.stdout.length} bytes on stdout`);
    }
  });
});

describe('parseRegion', () => {
  test('WxH+X+Y', () => {
    assert.deepEqual(parseRegion('1280x720+0+0'), { width: 1280, height: 720, x: 0, y: 0 });
    assert.deepEqual(parseRegion(' 640X480+1920+30 '), { width: 640, height: 480, x: 1920, y: 30 });
  });
  for (const bad of ['', '1280x720', '1280x720+0', 'x720+0+0', '1280x720-5+0', '8x8+0+0', 'axb+c+d', '1280x720+0+0+0']) {
    test(`rejects ${JSON.stringify(bad)} with a message showing the form`, () => {
      assert.throws(() => parseRegion(bad), (e: Error) => e instanceof UsageError && /WIDTHxHEIGHT\+X\+Y/.test(e.message) && e.message.includes(JSON.stringify(bad)));
    });
  }
});

describe('finding FFmpeg', () => {
  const dir = mkdtempSync(join(tmpdir(), 'udpcast-locate-'));
  const fake = join(dir, 'ffmpeg');
  writeFileSync(fake, '#!/bin/sh\nexit 0\n');
  chmodSync(fake, 0o755);
  const notExec = join(dir, 'ffplay');
  writeFileSync(notExec, '');
  chmodSync(notExec, 0o644);
  const none = async () => null;
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('order: --ffmpeg, then FFMPEG_PATH, then PATH, then the installer package', { skip: process.platform === 'win32' }, async () => {
    const env = { PATH: dir, FFMPEG_PATH: '/usr/bin/true' };
    assert.deepEqual(await locateFfmpeg({ flag: fake, env, installer: none }), { path: fake, source: 'flag' });
    assert.deepEqual(await locateFfmpeg({ env, installer: none }), { path: '/usr/bin/true', source: 'env' });
    assert.deepEqual(await locateFfmpeg({ env: { PATH: dir }, installer: none }), { path: fake, source: 'path' });
    assert.deepEqual(await locateFfmpeg({ env: { PATH: '' }, installer: async () => fake }), { path: fake, source: 'installer' });
  });

  test('a named binary that is not there is an error, not a silent fallback', async () => {
    await assert.rejects(locateFfmpeg({ flag: join(dir, 'nope'), env: { PATH: dir } }), (e: Error) => e instanceof UsageError && /--ffmpeg/.test(e.message));
    await assert.rejects(locateFfmpeg({ env: { PATH: dir, FFMPEG_PATH: notExec } }), (e: Error) => e instanceof UsageError && /FFMPEG_PATH/.test(e.message));
  });

  test('nothing anywhere: the install command for this OS and --ffmpeg PATH', async () => {
    for (const [platform, hint] of [['linux', 'apt-get install ffmpeg'], ['darwin', 'brew install ffmpeg'], ['win32', 'winget install ffmpeg']] as const) {
      await assert.rejects(locateFfmpeg({ env: { PATH: '' }, platform, installer: none }), (e: Error) => {
        assert.ok(e instanceof UsageError);
        assert.ok(e.message.includes(hint), e.message);
        assert.ok(e.message.includes('--ffmpeg PATH'), e.message);
        return true;
      });
    }
  });

  test('the installer package is found when PATH has no ffmpeg', async () => {
    const found = await locateFfmpeg({ env: { PATH: '' } });
    assert.equal(found.source, 'installer');
    assert.match(found.path, /@ffmpeg-installer/);
  });

  test('ffplay: FFPLAY_PATH, then PATH, else null; a non-executable file does not count', { skip: process.platform === 'win32' }, () => {
    assert.equal(locateFfplay({ env: { PATH: dir } }), null);
    assert.deepEqual(locateFfplay({ env: { PATH: '', FFPLAY_PATH: fake } }), { path: fake, source: 'env' });
  });

  test('filter probe: this FFmpeg has testsrc2, and no made-up filter', { skip: skipUnless('ffmpeg') }, async () => {
    assert.equal(await ffmpegHasFilter(which('ffmpeg')!, 'testsrc2'), true);
    assert.equal(await ffmpegHasFilter(which('ffmpeg')!, 'nosuchfilter'), false);
  });
});

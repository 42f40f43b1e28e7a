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
import { LAYER_MIN_HEIGHT, autoLayers, buildShareArgs, conformSize, layerSize, sizeNotice, type EncodeOptions } from '../src/encode/ffmpeg-args.ts';
import { resolveH264Encoder } from '../src/codecs/h264/ffmpeg.ts';
import { captureInputArgs, parseRegion, parseSourceOption, type CaptureOptions } from '../src/capture/source.ts';
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
    assert.deepEqual(args.slice(args.indexOf('-vf'), args.indexOf('-vf') + 2), ['-vf', 'crop=640:480:4:6:exact=1']);
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

  test('any other --source is an FFmpeg input, read at its native rate with its usual probing', () => {
    // No -fflags nobuffer: with it an H.264 file with B-frames fails ("co located POCs unavailable").
    assert.deepEqual(captureInputArgs({ source: 'clip.mp4', fps: 30, env: {} }), ['-re', '-i', 'clip.mp4']);
  });

  test('--loop repeats a file; a still image becomes a still stream at the share rate', () => {
    assert.deepEqual(captureInputArgs({ source: 'clip.mkv', fps: 30, env: {}, loop: true }), ['-re', '-stream_loop', '-1', '-i', 'clip.mkv']);
    assert.deepEqual(captureInputArgs({ source: 'slide.PNG', fps: 29.97, env: {} }), ['-re', '-loop', '1', '-framerate', '29.97', '-i', 'slide.PNG']);
    assert.deepEqual(captureInputArgs({ source: 'photo.jpeg', fps: 5, env: {}, loop: true }), ['-re', '-loop', '1', '-framerate', '5', '-i', 'photo.jpeg']);
  });

  test('--source-format and --source-option come before -i, in the order given', () => {
    assert.deepEqual(
      captureInputArgs({ source: 'testsrc2=size=641x361:rate=30', fps: 30, env: {}, format: 'lavfi', inputOptions: [['thread_queue_size', '64']] }),
      ['-re', '-thread_queue_size', '64', '-f', 'lavfi', '-i', 'testsrc2=size=641x361:rate=30'],
    );
    assert.deepEqual(
      captureInputArgs({ source: '/dev/video0', fps: 30, env: {}, format: 'v4l2', inputOptions: [['video_size', '1280x720'], ['input_format', 'mjpeg']] }),
      ['-re', '-video_size', '1280x720', '-input_format', 'mjpeg', '-f', 'v4l2', '-i', '/dev/video0'],
    );
    assert.deepEqual(parseSourceOption('video_size=1280x720'), ['video_size', '1280x720']);
    assert.deepEqual(parseSourceOption('-i:v=a=b'), ['i:v', 'a=b']);
    for (const bad of ['video_size', '=1', 'a b=1', '']) {
      assert.throws(() => parseSourceOption(bad), (e: Error) => e instanceof UsageError && /NAME=VALUE/.test(e.message) && !/\n/.test(e.message));
    }
  });

  test('options that cannot apply are refused in one line, not ignored', () => {
    const cases: [Partial<CaptureOptions>, RegExp][] = [
      [{ source: 'test', region: { width: 640, height: 360, x: 0, y: 0 } }, /--region .*--size/],
      [{ source: 'test', loop: true }, /--loop/],
      [{ source: 'screen', loop: true }, /--loop/],
      [{ source: 'screen', format: 'lavfi' }, /--source-format/],
      [{ source: 'test', inputOptions: [['a', 'b']] }, /--source-option/],
    ];
    for (const [o, re] of cases) {
      assert.throws(() => captureInputArgs(linux(o)), (e: Error) => e instanceof UsageError && re.test(e.message) && !/\n/.test(e.message), JSON.stringify(o));
    }
  });

  test('--region crops a file (grabbers grab the region themselves)', () => {
    const args = buildShareArgs({ source: 'clip.mp4', fps: 30, env: {}, region: { width: 640, height: 360, x: 8, y: 4 } }, h264);
    assert.deepEqual(args.slice(args.indexOf('-vf'), args.indexOf('-vf') + 2), ['-vf', 'crop=640:360:8:4:exact=1']);
    assert.ok(!buildShareArgs(linux({ region: { width: 640, height: 360, x: 8, y: 4 } }), h264).includes('-vf'));
  });
});

describe('sizes each codec can carry', () => {
  test('conformSize: H.264 even, RFC 2435 multiples of 8 up to 2040; padded, or scaled when too big', () => {
    const table: [EncodeOptions['codec'], number, number, ReturnType<typeof conformSize>][] = [
      ['h264', 1366, 768, undefined],
      ['h264', 641, 361, { width: 642, height: 362, how: 'pad' }],
      ['h264', 3840, 2160, undefined],
      ['mjpeg', 1280, 720, undefined],
      ['mjpeg', 1366, 768, { width: 1368, height: 768, how: 'pad' }],
      ['mjpeg', 641, 361, { width: 648, height: 368, how: 'pad' }],
      ['mjpeg', 2040, 2033, { width: 2040, height: 2040, how: 'pad' }],
      ['mjpeg', 2560, 1440, { width: 2040, height: 1144, how: 'scale' }],
      ['mjpeg', 1080, 2400, { width: 912, height: 2040, how: 'scale' }],
    ];
    for (const [codec, width, height, want] of table) assert.deepEqual(conformSize(codec, { width, height }), want, `${codec} ${width}x${height}`);
  });

  test('a size known to fit gets no filter; a size that does not, or one not known, gets the fitting stage', () => {
    const vf = (c: CaptureOptions, e: EncodeOptions) => {
      const a = buildShareArgs(c, e);
      return a.includes('-vf') ? a[a.indexOf('-vf') + 1] : undefined;
    };
    const MJPEG_FIT =
      "scale=w='if(gt(iw,2040)+gt(ih,2040),floor(min(2040,iw*2040/ih)/8)*8,iw)':h='if(gt(iw,2040)+gt(ih,2040),floor(min(2040,ih*2040/iw)/8)*8,ih)'," +
      'pad=ceil(iw/8)*8:ceil(ih/8)*8';
    assert.equal(vf(linux({ probedSize: { width: 1920, height: 1080 } }), h264), undefined);
    assert.equal(vf(linux(), h264), 'pad=ceil(iw/2)*2:ceil(ih/2)*2');
    assert.equal(vf(linux({ region: { width: 641, height: 361, x: 0, y: 0 } }), h264), 'pad=ceil(iw/2)*2:ceil(ih/2)*2');
    assert.equal(vf(linux({ probedSize: { width: 1366, height: 768 } }), mjpeg), MJPEG_FIT);
    assert.equal(vf(linux({ probedSize: { width: 1366, height: 768 } }), { ...mjpeg, size: { width: 1280, height: 720 } }), 'scale=1280:720');
    assert.equal(vf({ source: 'clip.mp4', fps: 30, env: {} }, mjpeg), MJPEG_FIT);
  });

  test('an explicit --size the codec cannot carry is refused with one that would do', () => {
    for (const [size, want] of [[{ width: 2560, height: 1440 }, '--size 2040x1144'], [{ width: 1366, height: 768 }, '--size 1368x768']] as const) {
      assert.throws(
        () => buildShareArgs(linux(), { ...mjpeg, size }),
        (e: Error) => e instanceof UsageError && /at most 2040x2040 in multiples of 8 \(RFC 2435\)/.test(e.message) && e.message.includes(`pass ${want}`),
      );
    }
  });

  test('the notice names the rule, both sizes and what to pass instead', () => {
    assert.equal(
      sizeNotice(linux({ probedSize: { width: 1366, height: 768 } }), mjpeg),
      'JPEG over RTP (RFC 2435) carries multiples of 8 up to 2040x2040: padding 1366x768 to 1368x768 (--size WxH picks another size)',
    );
    assert.equal(
      sizeNotice(linux({ region: { width: 641, height: 361, x: 0, y: 0 } }), h264),
      'H.264 needs an even width and height: padding 641x361 to 642x362 (--size WxH picks another size)',
    );
    assert.equal(sizeNotice(linux({ probedSize: { width: 1366, height: 768 } }), h264), undefined);
    assert.equal(sizeNotice(linux(), mjpeg), undefined); // not known: nothing to say
  });
});

describe('whole argv', () => {
  test('linux screen, libx264: capture, first video stream only, rate, encoder, FLV on stdout', () => {
    assert.deepEqual(buildShareArgs(linux({ probedSize: { width: 1920, height: 1080 } }), h264), [
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

  test('mjpeg without a quality keeps to the bitrate: rate control instead of -q:v', () => {
    const a = buildShareArgs(linux(), { ...mjpeg, quality: undefined, bitrateKbps: 1000 });
    assert.ok(!a.includes('-q:v'));
    assert.deepEqual(a.slice(a.indexOf('-b:v'), a.indexOf('-b:v') + 6), ['-b:v', '1000k', '-maxrate', '1000k', '-bufsize', '500k']);
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

test('real FFmpeg fits odd and oversized pictures: H.264 to even sizes, MJPEG to RFC 2435\'s', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'udpcast-fit-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const cases: [EncodeOptions, string, [number, number]][] = [
    [h264, '641x361', [642, 362]],
    [mjpeg, '641x361', [648, 368]],
    [mjpeg, '2560x1440', [2040, 1144]],
    [mjpeg, '1366x768', [1368, 768]],
  ];
  for (const [enc, input, want] of cases) {
    // The size is not known beforehand (a lavfi graph, as from --source-format): the filter reads the
    // frames'. testsrc, not testsrc2: testsrc2 makes 4:2:0 and rounds an odd size down to even.
    const args = buildShareArgs({ source: `testsrc=size=${input}:rate=30`, format: 'lavfi', fps: 30, env: {} }, enc);
    const out = join(dir, `${enc.codec}-${input}.${enc.codec === 'h264' ? 'flv' : 'mjpeg'}`);
    args.splice(args.lastIndexOf('-f'), 0, '-frames:v', '2');
    args[args.length - 1] = out;
    const r = spawnSync(which('ffmpeg')!, args, { timeout: 20_000 });
    assert.equal(r.status, 0, String(r.stderr));
    const p = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', out], { encoding: 'utf8' });
    assert.equal(p.stdout.trim(), want.join(','), `${enc.codec} ${input}`);
  }
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

describe('--layers: one capture split into sizes', () => {
  test('the split, one output pipe a layer, the same GOP and no scene-cut keyframes; layerSize says the sizes it makes', { skip: skipUnless('ffmpeg') }, () => {
    const capture: CaptureOptions = { source: 'test', fps: 30, size: { width: 1000, height: 600 } };
    for (const codec of ['h264', 'mjpeg'] as const) {
      const encode: EncodeOptions = { codec, bitrateKbps: 2000, fps: 30, gop: 30, size: { width: 1000, height: 600 }, layers: 3 };
      const args = buildShareArgs(capture, encode);
      assert.match(args[args.indexOf('-filter_complex') + 1], /split=3\[l0\]\[l1\]\[l2\]/);
      assert.deepEqual(args.filter((a) => a.startsWith('pipe:')), ['pipe:1', 'pipe:3', 'pipe:4']);
      assert.equal(args.filter((a) => a === '-sc_threshold').length, 3);
      // What FFmpeg makes of the graph, each layer to its own file: the sizes layerSize says.
      const dir = mkdtempSync(join(tmpdir(), 'udpcast-layers-args-'));
      try {
        const outs = [0, 1, 2].map((i) => join(dir, `l${i}.${codec === 'h264' ? 'flv' : 'mjpeg'}`));
        const argv = args.filter((a) => a !== '-re').map((a) => (a.startsWith('pipe:') ? outs[[1, 3, 4].indexOf(Number(a.slice(5)))] : a));
        argv.splice(argv.indexOf('-i'), 0, '-t', '0.2'); // the test source, a fifth of a second long
        const r = spawnSync('ffmpeg', ['-y', ...argv], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        for (let i = 0; i < 3; i++) {
          const p = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', outs[i]], { encoding: 'utf8' });
          const s = layerSize(codec, { width: 1000, height: 600 }, i);
          assert.equal(p.stdout.trim(), `${s.width},${s.height}`, `${codec} layer ${i}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

describe('--layers auto', () => {
  const h264 = (fps = 30, encoder?: string): EncodeOptions => ({ codec: 'h264', bitrateKbps: 2500, fps, gop: 60, encoder });
  const size = (width: number, height: number) => ({ width, height });

  test('as many as keep the smallest layer LAYER_MIN_HEIGHT tall', () => {
    assert.equal(autoLayers(h264(), size(1280, 720), 8).layers, 3, '720p: 640x360 and 320x180');
    assert.equal(autoLayers(h264(), size(1920, 1080), 8).layers, 3);
    assert.equal(autoLayers(h264(), size(640, 480), 8).layers, 2, 'a quarter of 480 lines is under 180');
    assert.equal(autoLayers(h264(), size(320, 240), 8).layers, 1);
    assert.ok(layerSize('h264', size(1280, 720), 2).height >= LAYER_MIN_HEIGHT);
  });

  test('and the encoding within half the cores: fewer for a big picture on a small machine', () => {
    assert.equal(autoLayers(h264(), size(1920, 1080), 2).layers, 3, '1080p30, three layers: ~82 Mpx/s, half of 2 cores');
    assert.equal(autoLayers(h264(), size(3840, 2160), 2).layers, 1, '4K30 alone is ~250 Mpx/s');
    assert.equal(autoLayers(h264(), size(3840, 2160), 16).layers, 3);
    assert.equal(autoLayers(h264(60), size(2560, 1440), 2).layers, 1, '1440p60 fills the budget on its own');
    const why = autoLayers(h264(), size(1280, 720), 2).why;
    assert.match(why, /1280x720 at 30 fps on 2 cores/);
  });

  test('one for MJPEG, for a GPU encoder and for a size not known, each saying why', () => {
    const mjpeg = autoLayers({ codec: 'mjpeg', bitrateKbps: 2500, fps: 30, gop: 60 }, size(1920, 1080), 8);
    assert.deepEqual(mjpeg, { layers: 1, why: 'mjpeg pictures stand alone' });
    assert.equal(autoLayers(h264(), undefined, 8).why, 'the picture size is not known');
    assert.deepEqual(autoLayers(h264(30, 'h264_vaapi'), size(1920, 1080), 8), { layers: 1, why: '--encoder h264_vaapi encodes on the GPU' });
  });
});

// Picture size from real SPS NAL units that x264 wrote, judged by ffprobe's own reading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { spsSize } from '../src/codecs/h264/sps.ts';
import { splitAnnexB, nalType, NAL_SPS } from '../src/codecs/h264/annexb.ts';
import { PacketError } from '../src/util/errors.ts';
import { skipUnless } from './helpers/tools.ts';

for (const [w, h, pixFmt] of [[320, 240, 'yuv420p'], [1280, 720, 'yuv420p'], [1918, 1078, 'yuv420p'], [642, 362, 'yuv444p']] as const) {
  test(`SPS of a ${w}x${h} ${pixFmt} x264 stream reads as ${w}x${h}`, { skip: skipUnless('ffmpeg') }, () => {
    const r = spawnSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', `testsrc=size=${w}x${h}:rate=1`, '-frames:v', '1', '-pix_fmt', pixFmt, '-c:v', 'libx264', '-f', 'h264', '-']);
    const sps = splitAnnexB(r.stdout).find((n) => nalType(n) === NAL_SPS)!;
    assert.deepEqual(spsSize(sps), { width: w, height: h });
  });
}

test('a truncated SPS is a PacketError, not a crash', () => {
  assert.throws(() => spsSize(Buffer.from([0x67, 0x64, 0x00])), PacketError);
});

/**
 * Real encoded material for the in-process benchmarks: a 720p x264 encode of FFmpeg's testsrc2
 * with the settings `udpcast share` uses, split into access units at the AUD NAL units x264 is
 * asked to write (aud=1), so access-unit boundaries come from the encoder, not from a guess.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { NAL_AUD, nalType, splitAnnexB } from '../src/codecs/h264/annexb.ts';
import { OUT, x264Args } from './lib.ts';

/** Each access unit as its NAL units (without start codes), AUDs dropped (RFC 6184 senders may). */
export function h264AccessUnits(seconds: number): Buffer[][] {
  const file = path.join(OUT, `sample-720p-${seconds}s.h264`);
  if (!existsSync(file)) {
    const r = spawnSync(
      'ffmpeg',
      [
        '-hide_banner', '-loglevel', 'error', '-y',
        '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=30`, '-t', String(seconds),
        ...x264Args(60), '-x264-params', 'aud=1', '-f', 'h264', file,
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`ffmpeg encode failed: ${r.stderr}`);
  }
  const aus: Buffer[][] = [];
  let au: Buffer[] = [];
  for (const nalu of splitAnnexB(readFileSync(file))) {
    if (nalType(nalu) === NAL_AUD) {
      if (au.length) aus.push(au);
      au = [];
    } else {
      au.push(nalu);
    }
  }
  if (au.length) aus.push(au);
  return aus;
}

/** A handful of baseline JPEGs as FFmpeg's mjpeg encoder makes them for udpcast (standard Huffman). */
export function mjpegFrames(count: number): Buffer[] {
  const file = path.join(OUT, `sample-${count}.mjpeg`);
  if (!existsSync(file)) {
    const r = spawnSync(
      'ffmpeg',
      [
        '-hide_banner', '-loglevel', 'error', '-y',
        '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-frames:v', String(count),
        '-c:v', 'mjpeg', '-q:v', '5', '-huffman', '0', '-pix_fmt', 'yuvj420p', '-f', 'mjpeg', file,
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`ffmpeg mjpeg encode failed: ${r.stderr}`);
  }
  const data = readFileSync(file);
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 2; i < data.length - 1; i++) {
    // Each image ends at EOI (FF D9); FFmpeg's entropy data never holds an unstuffed FF D9.
    if (data[i] === 0xff && data[i + 1] === 0xd9) {
      out.push(data.subarray(start, i + 2));
      start = i + 2;
      i++;
    }
  }
  return out;
}

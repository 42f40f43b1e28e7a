/** FFmpeg as the judge of what a viewer wrote: decode errors, frame count, per-frame checksums. */
import { spawnSync } from 'node:child_process';

export interface Decoded {
  /** FFmpeg's stderr at -v error: empty when every frame decoded cleanly. */
  errors: string;
  frames: number;
  /** framemd5 of each decoded frame, in order. */
  md5s: string[];
}

export function decode(file: string, format: 'h264' | 'mjpeg' | 'matroska' | 'mp4'): Decoded {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-f', format, '-i', file, '-f', 'framemd5', '-'], {
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const md5s = r.stdout
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(',').pop()!.trim());
  return { errors: r.stderr.trim(), frames: md5s.length, md5s };
}

/** Mean RGB of decoded frames (each scaled to 1x1), in order. */
export function meanColours(file: string, format: 'h264' | 'mjpeg' | 'matroska' | 'mp4'): [number, number, number][] {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-f', format, '-i', file, '-vf', 'scale=1:1:flags=area', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], {
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const out: [number, number, number][] = [];
  for (let i = 0; i + 3 <= r.stdout.length; i += 3) out.push([r.stdout[i], r.stdout[i + 1], r.stdout[i + 2]]);
  return out;
}

/** The last JSON line of a --stats-json file. */
export function lastStats(text: string): Record<string, any> {
  const lines = text.trim().split('\n').filter(Boolean);
  return JSON.parse(lines[lines.length - 1]);
}

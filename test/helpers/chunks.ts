/** Helpers for the readers of FFmpeg's pipes (FLV, JPEG, Ogg), which must take their input split anywhere. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { which } from './tools.ts';

/** Feeds `data` to a reader cut at `cuts` (ascending offsets) and returns everything it gave, in order. */
export function pushAll<T>(r: { push(b: Buffer): T[] }, data: Buffer, cuts: number[]): T[] {
  const out: T[] = [];
  let prev = 0;
  for (const c of [...cuts, data.length]) {
    out.push(...r.push(data.subarray(prev, c)));
    prev = c;
  }
  return out;
}

/** Runs FFmpeg with `args`, feeding stdout chunks to `onData` as they come; killed in finally. */
export async function runFfmpeg(args: string[], onData: (b: Buffer) => void): Promise<void> {
  const child = spawn(which('ffmpeg')!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  try {
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, stderr);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  }
}

/**
 * Finding the external judges (ffmpeg, ffprobe, ffplay, Xvfb, tmux) for tests. A test that needs a
 * missing tool skips with a printed reason; CI installs them all, so there they run.
 */
import { spawnSync } from 'node:child_process';

const cache = new Map<string, string | null>();

/** Absolute path of `name` on PATH, or null. */
export function which(name: string): string | null {
  if (cache.has(name)) return cache.get(name)!;
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = r.status === 0 ? r.stdout.trim() : null;
  cache.set(name, path || null);
  return path || null;
}

/** For `test(name, { skip: skipUnless('ffmpeg') }, …)`: false when present, else the reason. */
export function skipUnless(...names: string[]): string | false {
  const missing = names.filter((n) => !which(n));
  if (missing.length === 0) return false;
  const reason = `needs ${missing.join(', ')} on PATH (CI installs them: apt-get install ffmpeg xvfb tmux)`;
  console.log(`# skipped: ${reason}`);
  return reason;
}

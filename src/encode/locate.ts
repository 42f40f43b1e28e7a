/**
 * Finding FFmpeg (and ffplay). FFmpeg is looked for, in order:
 *   1. --ffmpeg PATH          a person said which one
 *   2. $FFMPEG_PATH           the environment said which one
 *   3. `ffmpeg` on $PATH      the system's, usually the most capable build (hardware encoders)
 *   4. @ffmpeg-installer/ffmpeg, the optional npm dependency, a static build (it has no ffplay)
 * A path given explicitly (1, 2) that does not work is an error, not a reason to fall through:
 * silently running a different FFmpeg than the one asked for would confuse.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { UsageError } from '../util/errors.ts';

export interface Located {
  path: string;
  source: 'flag' | 'env' | 'path' | 'installer';
}

export interface LocateOptions {
  /** Value of --ffmpeg. */
  flag?: string;
  /** Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Default process.platform (tests pass others for the install hint). */
  platform?: NodeJS.Platform;
  /** Default: import('@ffmpeg-installer/ffmpeg'). Tests pass a stub that finds nothing. */
  installer?: () => Promise<string | null>;
}

/** How to get FFmpeg, per OS, for the one-line error. */
export function installHint(platform: NodeJS.Platform): string {
  switch (platform) {
    case 'darwin':
      return 'brew install ffmpeg';
    case 'win32':
      return 'winget install ffmpeg';
    default:
      return 'sudo apt-get install ffmpeg (or your distribution\'s package)';
  }
}

/** True for an existing regular file we may execute. */
export function isExecutable(p: string, platform: NodeJS.Platform = process.platform): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    // Windows has no execute bit; existence is what counts there.
    if (platform !== 'win32') accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `name` on PATH (with PATHEXT on Windows), or null. */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string | null {
  const dirs = (env.PATH ?? env.Path ?? '').split(platform === 'win32' ? ';' : delimiter).filter(Boolean);
  const exts = platform === 'win32' ? ['', ...(env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').map((e) => e.toLowerCase())] : [''];
  for (const dir of dirs) {
    for (const ext of exts) {
      const p = join(dir, name + ext);
      if (isExecutable(p, platform)) return p;
    }
  }
  return null;
}

/** An explicitly named binary: a path, or a bare name to look up on PATH. */
function resolveNamed(value: string, env: NodeJS.ProcessEnv, platform: NodeJS.Platform): string | null {
  if (isAbsolute(value) || /[\\/]/.test(value)) return isExecutable(value, platform) ? value : null;
  return findOnPath(value, env, platform);
}

async function fromInstaller(): Promise<string | null> {
  try {
    // Optional dependency: absent on some installs, and it throws (a string) on unsupported
    // platforms, so any failure just means "not available".
    const mod = (await import('@ffmpeg-installer/ffmpeg' as string)) as { default?: { path?: string }; path?: string };
    const p = mod.default?.path ?? mod.path;
    return p && isExecutable(p) ? p : null;
  } catch {
    return null;
  }
}

export async function locateFfmpeg(opts: LocateOptions = {}): Promise<Located> {
  const env = opts.env ?? process.env;
  const platform = opts.platform ?? process.platform;
  if (opts.flag) {
    const p = resolveNamed(opts.flag, env, platform);
    if (!p) throw new UsageError(`--ffmpeg ${opts.flag}: no executable file there`);
    return { path: p, source: 'flag' };
  }
  if (env.FFMPEG_PATH) {
    const p = resolveNamed(env.FFMPEG_PATH, env, platform);
    if (!p) throw new UsageError(`FFMPEG_PATH=${env.FFMPEG_PATH}: no executable file there`);
    return { path: p, source: 'env' };
  }
  const onPath = findOnPath('ffmpeg', env, platform);
  if (onPath) return { path: onPath, source: 'path' };
  const installed = await (opts.installer ?? fromInstaller)();
  if (installed) return { path: installed, source: 'installer' };
  throw new UsageError(`FFmpeg not found: install it (${installHint(platform)}) or pass --ffmpeg PATH`);
}

/** ffplay from $FFPLAY_PATH or PATH; null when there is none (the installer package has none). */
export function locateFfplay(opts: { env?: NodeJS.ProcessEnv; platform?: NodeJS.Platform } = {}): Located | null {
  const env = opts.env ?? process.env;
  const platform = opts.platform ?? process.platform;
  if (env.FFPLAY_PATH) {
    const p = resolveNamed(env.FFPLAY_PATH, env, platform);
    if (p) return { path: p, source: 'env' };
  }
  const p = findOnPath('ffplay', env, platform);
  return p ? { path: p, source: 'path' } : null;
}

/** Whether this FFmpeg has a filter (e.g. ddagrab on Windows), from `ffmpeg -hide_banner -filters`. */
export async function ffmpegHasFilter(ffmpegPath: string, filter: string): Promise<boolean> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile(ffmpegPath, ['-hide_banner', '-filters'], { timeout: 5000, windowsHide: true }, (err, stdout) => {
      if (err) return resolve(false);
      resolve(new RegExp(`^\\s*\\S+\\s+${filter}\\s`, 'm').test(String(stdout)));
    });
  });
}

/**
 * Runs udpcast as a user would (a separate process per role) and keeps track of every process a
 * test starts, so an `after` hook can end them all by pid whatever happened.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = 'bin/udpcast.ts';

export interface Running {
  child: ChildProcess;
  pid: number;
  stdout: Buffer[];
  stderr: string[];
  /** Arrival time (ms) of each stdout chunk, for latency measurements. */
  stdoutTimes: number[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderrText(): string;
}

const live = new Set<ChildProcess>();

export function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const r: Running = {
    child,
    pid: child.pid!,
    stdout: [],
    stderr: [],
    stdoutTimes: [],
    exit: new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      }),
    ),
    stderrText: () => r.stderr.join(''),
  };
  child.stdout!.on('data', (d: Buffer) => {
    r.stdout.push(d);
    r.stdoutTimes.push(Date.now());
  });
  child.stderr!.on('data', (d: Buffer) => r.stderr.push(d.toString()));
  return r;
}

/** `udpcast ARGS` through tsx, from the repository root. */
export function udpcast(args: string[], env: NodeJS.ProcessEnv = {}): Running {
  return start(process.execPath, ['--import', 'tsx', BIN, ...args], env);
}

/** Kills every process started here that is still running (SIGKILL: a test is over). */
export function killAll(): void {
  for (const c of live) {
    try {
      process.kill(c.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

/** Resolves with the exit, or rejects after `ms`. */
export async function exited(r: Running, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`process ${r.pid} still running after ${ms} ms; stderr:\n${r.stderrText()}`)), ms);
  });
  try {
    return await Promise.race([r.exit, timeout]);
  } finally {
    clearTimeout(t);
  }
}

/** A UDP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `cond` every 50 ms until true; rejects after `ms` with `what`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Running, and not a zombie: an orphan (ffplay after its watch, a tmux pane's process) is reaped
 * by PID 1, which in a container may never happen.
 */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Short-lived tool runs for tests (ffmpeg, ffprobe): output collected, SIGKILLed by pid if they
 * outlive their time, and every one still running ended by `killRuns` in an `after` hook.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** Starts `cmd` with stdin closed (FFmpeg would read keys from it), stdout and stderr collected. */
export function startRun(cmd: string, args: string[], timeoutMs: number): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => {
    if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }, timeoutMs);
  const done = new Promise<Run>((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(new Error(`${cmd} failed to start: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

export function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<Run> {
  return startRun(cmd, args, timeoutMs).done;
}

/** For `after`: SIGKILLs every run still going. */
export function killRuns(): void {
  for (const c of running) if (c.pid && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
}

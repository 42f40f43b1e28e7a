/**
 * Owning a child process (FFmpeg, ffplay): one wrapper that
 *  - reports "failed to start" (the binary is missing or not executable: spawn's 'error' before
 *    'spawn') separately from "died later" (it ran, then exited), each exactly once;
 *  - hands stderr out line by line, so FFmpeg's warnings reach the log whole;
 *  - kills idempotently: SIGTERM, then SIGKILL if the child is still there after a grace period;
 *  - is registered process-wide while alive, so no child outlives udpcast on exit, Ctrl-C or kill.
 *
 * `spawn` is injectable so tests can drive a fake child.
 */
import { spawn as nodeSpawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

export type SpawnFn = typeof nodeSpawn;

/** SIGTERM → SIGKILL grace: FFmpeg finishes its current packet and exits well within this. */
export const KILL_GRACE_MS = 2000;
/** A stderr "line" longer than this is handed out in pieces, so a child cannot grow our memory. */
export const MAX_STDERR_LINE = 16 * 1024;
/**
 * After 'exit', how long to wait for the pipes to close before reporting the death anyway (a
 * grandchild holding a pipe open must not hide the death).
 */
export const CLOSE_AFTER_EXIT_MS = 1000;

export interface OwnedProcessOptions {
  command: string;
  args: readonly string[];
  /** For messages: "ffmpeg", "ffplay". Default: the command's basename. */
  name?: string;
  /** 'pipe' to write to the child (ffplay reading a stream); default 'ignore'. */
  stdin?: 'pipe' | 'ignore';
  /** Default 'pipe' (FFmpeg writes frames there); 'ignore' for a player. */
  stdout?: 'pipe' | 'ignore';
  /** More pipes from the child after stderr, as fds 3, 4, …: FFmpeg's `pipe:3` outputs (quality layers). */
  extraOutputs?: number;
  env?: NodeJS.ProcessEnv;
  killGraceMs?: number;
  spawn?: SpawnFn;
}

export interface OwnedProcessEvents {
  /** The OS started the child; `pid` is set. */
  started: [pid: number];
  /** The child never ran (e.g. ENOENT, EACCES). No 'died' follows. */
  'failed-to-start': [err: Error];
  /** The child ran and is gone, its output drained. `expected` is true when kill() asked for it. */
  died: [code: number | null, signal: NodeJS.Signals | null, expected: boolean];
  /** One line of the child's stderr, without its line ending. */
  'stderr-line': [line: string];
}

type Phase = 'starting' | 'running' | 'exited' | 'failed';

export class OwnedProcess extends EventEmitter<OwnedProcessEvents> {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  private readonly child: ChildProcess;
  private phase: Phase = 'starting';
  private killRequested = false;
  private killPromise: Promise<void> | null = null;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly graceMs: number;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  private stderrDecoder = new StringDecoder('utf8');
  private stderrPartial = '';

  constructor(opts: OwnedProcessOptions) {
    super();
    this.command = opts.command;
    this.args = opts.args;
    this.name = opts.name ?? opts.command.split(/[\\/]/).pop() ?? opts.command;
    this.graceMs = opts.killGraceMs ?? KILL_GRACE_MS;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    const spawn = opts.spawn ?? nodeSpawn;
    this.child = spawn(opts.command, [...opts.args], {
      stdio: [
        opts.stdin ?? 'ignore', // stdin: FFmpeg runs with -nostdin; a player may read a stream here
        opts.stdout ?? 'pipe', // stdout: the encoded stream (FLV or MJPEG), read by the caller
        'pipe', // stderr: warnings and errors, logged line by line
        ...Array.from({ length: opts.extraOutputs ?? 0 }, () => 'pipe' as const),
      ],
      env: opts.env,
      windowsHide: true,
    });
    registry.add(this);

    this.child.once('spawn', () => {
      this.phase = 'running';
      this.emit('started', this.child.pid!);
    });
    this.child.on('error', (err) => {
      if (this.phase === 'starting') {
        this.phase = 'failed';
        this.finish();
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'not found' : code === 'EACCES' ? 'not executable' : err.message;
        const e = new Error(`${this.name} failed to start: ${opts.command} ${why}`, { cause: err });
        this.emit('failed-to-start', e);
      }
      // Later errors (a signal that could not be sent) change nothing: 'exit' still decides.
    });
    this.child.once('exit', (code, signal) => {
      if (this.phase === 'failed') return;
      this.exitInfo = { code, signal };
      // Wait for stdout/stderr to drain, but not forever.
      this.closeTimer = setTimeout(() => this.reportDeath(), CLOSE_AFTER_EXIT_MS);
      this.closeTimer.unref?.();
    });
    this.child.once('close', (code, signal) => {
      if (this.phase === 'failed') return;
      this.exitInfo ??= { code, signal };
      this.reportDeath();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => this.onStderr(chunk));
    // A pipe error (EPIPE after the child died) must not crash udpcast; 'exit' reports the death.
    this.child.stderr?.on('error', () => {});
    this.child.stdout?.on('error', () => {});
    this.child.stdin?.on('error', () => {});
  }

  get pid(): number | undefined {
    return this.child.pid;
  }
  /** The encoded stream, when stdout is 'pipe'. */
  /** Output pipe `fd` of the child: 1 is stdout, 3 and up the extraOutputs. */
  output(fd: number): Readable | null {
    if (fd === 1) return this.stdout;
    return (this.child.stdio?.[fd] as Readable | null | undefined) ?? null;
  }

  get stdout(): Readable | null {
    return this.child.stdout;
  }
  get stdin(): Writable | null {
    return this.child.stdin;
  }
  /** Started and not yet gone. */
  get running(): boolean {
    return this.phase === 'running';
  }
  /** Whether kill() has been called. */
  get stopping(): boolean {
    return this.killRequested;
  }
  /** Resolves once the child is gone or never started. */
  get exited(): Promise<void> {
    return this.done;
  }

  /**
   * Ends the child: SIGTERM, then SIGKILL after the grace period. Idempotent: every call returns
   * the same promise, which resolves when the child is gone (at once if it never started).
   */
  kill(graceMs = this.graceMs): Promise<void> {
    if (this.killPromise) return this.killPromise;
    this.killRequested = true;
    if (this.phase === 'exited' || this.phase === 'failed' || this.exitInfo) {
      this.killPromise = this.done;
      return this.killPromise;
    }
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    this.killPromise = this.done.then(() => clearTimeout(timer));
    return this.killPromise;
  }

  private signal(sig: NodeJS.Signals): void {
    try {
      this.child.kill(sig);
    } catch {
      // Already gone: 'exit' has been or will be reported.
    }
  }

  private onStderr(chunk: Buffer): void {
    const text = this.stderrPartial + this.stderrDecoder.write(chunk);
    // FFmpeg ends progress lines with \r; treat \r\n, \n and \r alike.
    const lines = text.split(/\r\n|\n|\r/);
    this.stderrPartial = lines.pop()!;
    while (this.stderrPartial.length > MAX_STDERR_LINE) {
      lines.push(this.stderrPartial.slice(0, MAX_STDERR_LINE));
      this.stderrPartial = this.stderrPartial.slice(MAX_STDERR_LINE);
    }
    for (const line of lines) if (line.length > 0) this.emit('stderr-line', line);
  }

  private reportDeath(): void {
    if (this.phase === 'exited' || this.phase === 'failed') return;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.phase = 'exited';
    const rest = this.stderrPartial + this.stderrDecoder.end();
    this.stderrPartial = '';
    if (rest.length > 0) this.emit('stderr-line', rest);
    this.finish();
    const { code, signal } = this.exitInfo!;
    this.emit('died', code, signal, this.killRequested);
  }

  private finish(): void {
    registry.delete(this);
    this.resolveDone();
  }
}

// ---- Process-wide registry: no child outlives udpcast ------------------------------------------

const SIGNAL_EXIT_CODES: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

class Registry {
  private readonly live = new Set<OwnedProcess>();
  private installed = false;

  add(p: OwnedProcess): void {
    this.live.add(p);
    if (!this.installed) {
      this.installed = true;
      process.on('exit', this.onExit);
      process.on('SIGINT', this.onSignal);
      process.on('SIGTERM', this.onSignal);
    }
  }

  delete(p: OwnedProcess): void {
    this.live.delete(p);
    if (this.live.size === 0 && this.installed) {
      // Nothing to guard: give the signals back to their defaults (or the application).
      this.installed = false;
      process.off('exit', this.onExit);
      process.off('SIGINT', this.onSignal);
      process.off('SIGTERM', this.onSignal);
    }
  }

  get size(): number {
    return this.live.size;
  }

  /** Ends every live child and waits for them. */
  killAll(): Promise<void> {
    return Promise.all([...this.live].map((p) => p.kill())).then(() => undefined);
  }

  // Exiting: nothing asynchronous runs any more, so SIGKILL what is left.
  private readonly onExit = (): void => {
    for (const p of this.live) {
      try {
        if (p.pid) process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };

  private readonly onSignal = (sig: NodeJS.Signals): void => {
    const ours = process.listenerCount(sig) === 1;
    void this.killAll().finally(() => {
      // Listening to a signal replaces Node's default of exiting; if nobody else handles it,
      // exit as the default would have, once the children are gone.
      if (ours) process.exit(SIGNAL_EXIT_CODES[sig as 'SIGINT' | 'SIGTERM'] ?? 1);
    });
  };
}

const registry = new Registry();

/** Live children (for tests and the shutdown path). */
export function liveChildren(): number {
  return registry.size;
}

/** Ends every live child (SIGTERM, then SIGKILL after the grace period) and waits for them. */
export function killAllChildren(): Promise<void> {
  return registry.killAll();
}

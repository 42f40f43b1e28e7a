/**
 * A Chromium driven over the Chrome DevTools Protocol, with no npm dependency: Chromium is started
 * with --remote-debugging-pipe, reads NUL-terminated JSON commands on its fd 3 and writes answers
 * and events on its fd 4. Just enough for tests: open a page, evaluate, take a screenshot. Headless
 * by default; with `headless: false` a real window on the X display of `env.DISPLAY` (the glass
 * benchmarks film it).
 */
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { which } from './tools.ts';

export interface Browser {
  pid: number;
  open(url: string): Promise<Tab>;
  close(): Promise<void>;
  /** The last ~200 lines Chromium wrote (stderr and stdout), for a failing test to print. */
  stderr(): string;
}

export interface Tab {
  /** Runtime.evaluate with returnByValue and awaitPromise; throws with the page's exception text on an exception */
  evaluate<T>(expression: string): Promise<T>;
  /** Page.captureScreenshot (png) -> Buffer */
  screenshot(): Promise<Buffer>;
  /** closes this tab (Target.closeTarget) */
  close(): Promise<void>;
}

/** The Chromium binary on PATH (Debian's `chromium` first), or null. */
export function chromiumPath(): string | null {
  return which('chromium') ?? which('chromium-browser') ?? which('google-chrome');
}

interface Message {
  id?: number;
  method?: string;
  params?: any;
  result?: any;
  error?: { message: string };
  sessionId?: string;
}

const LOG_LINES = 200;
// Chromium processes still alive when the test process exits are killed by pid (never by name).
const live = new Set<number>();
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export interface LaunchOptions {
  /** How long a DevTools command may take, ms. Default 15 000 (the first answer: at least 30 s). */
  timeoutMs?: number;
  /**
   * Default true. false: a real window on the X display of `env.DISPLAY`, the page's viewport
   * whatever the window gives it (no 1280x720 override), and no --disable-gpu unless `extraArgs`
   * says so.
   */
  headless?: boolean;
  /** Chromium's environment (DISPLAY for a window). Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** --window-size, "W,H". Default "1280,720". */
  windowSize?: string;
  /** More flags, after the defaults (--kiosk, --window-position=0,0, …). */
  extraArgs?: string[];
}

export async function launchChromium(opts: LaunchOptions = {}): Promise<Browser> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const headless = opts.headless ?? true;
  const bin = chromiumPath();
  if (!bin) throw new Error('chromium not found on PATH (apt-get install chromium)');
  const profile = mkdtempSync(join(tmpdir(), 'udpcast-chromium-'));
  const args = [
    ...(headless ? ['--headless=new', '--disable-gpu'] : []),
    '--no-sandbox', // tests run as root, where the sandbox refuses to start
    '--disable-dev-shm-usage', // containers often have a 64 MB /dev/shm
    '--no-first-run',
    '--no-default-browser-check',
    `--user-data-dir=${profile}`,
    '--autoplay-policy=no-user-gesture-required',
    '--use-fake-ui-for-media-stream',
    `--window-size=${opts.windowSize ?? '1280,720'}`,
    '--remote-debugging-pipe',
    ...(opts.extraArgs ?? []),
    'about:blank', // last: Debian's wrapper script moves flags after the first non-flag argument
  ];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
  const pid = child.pid!;
  live.add(pid);

  const log: string[] = [];
  const keepLog = (d: Buffer) => {
    log.push(...d.toString().split('\n').filter((l) => l !== ''));
    if (log.length > LOG_LINES) log.splice(0, log.length - LOG_LINES);
  };
  child.stdout!.on('data', keepLog);
  child.stderr!.on('data', keepLog);
  const stderr = () => log.join('\n');

  const toChrome = child.stdio[3] as Writable;
  const fromChrome = child.stdio[4] as Readable;
  // Writing after an exit gives EPIPE; the exit handler below already rejects what is pending.
  toChrome.on('error', () => {});
  fromChrome.on('error', () => {});

  let exitReason: string | null = null;
  const exit = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(pid);
      exitReason = `chromium exited (code ${code}, signal ${signal})`;
      for (const [, p] of pending) p.fail(new Error(`${p.method}: ${exitReason}`));
      pending.clear();
      resolve();
    }),
  );

  let nextId = 1;
  const pending = new Map<number, { method: string; ok: (r: any) => void; fail: (e: Error) => void }>();
  const listeners = new Set<(m: Message) => void>();
  let buffered = Buffer.alloc(0);
  fromChrome.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    for (let end = buffered.indexOf(0); end >= 0; end = buffered.indexOf(0)) {
      const msg = JSON.parse(buffered.subarray(0, end).toString()) as Message;
      buffered = buffered.subarray(end + 1);
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) p?.fail(new Error(`${p.method}: ${msg.error.message}`));
        else p?.ok(msg.result);
      } else {
        for (const l of listeners) l(msg);
      }
    }
  });

  function send(method: string, params: object = {}, sessionId?: string, ms = timeoutMs): Promise<any> {
    if (exitReason) return Promise.reject(new Error(`${method}: ${exitReason}`));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${method}: no answer from chromium within ${ms} ms`));
      }, ms);
      const done = () => clearTimeout(timer);
      pending.set(id, {
        method,
        ok: (r) => (done(), resolve(r)),
        fail: (e) => (done(), reject(e)),
      });
      toChrome.write(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }) + '\0');
    });
  }

  /** Resolves on the first event `method` of `sessionId`; rejects after the timeout. */
  function waitEvent(method: string, sessionId: string, ms = timeoutMs): { promise: Promise<any>; cancel(): void } {
    let cancel = () => {};
    const promise = new Promise<any>((resolve, reject) => {
      const l = (m: Message) => {
        if (m.method === method && m.sessionId === sessionId) (cancel(), resolve(m.params));
      };
      const timer = setTimeout(() => (cancel(), reject(new Error(`${method}: not within ${ms} ms`))), ms);
      cancel = () => (clearTimeout(timer), listeners.delete(l));
      listeners.add(l);
    });
    return { promise, cancel };
  }

  let closing: Promise<void> | null = null;
  const browser: Browser = {
    pid,
    stderr,
    close() {
      closing ??= (async () => {
        if (!exitReason) {
          await send('Browser.close', {}, undefined, 3000).catch(() => {});
          const gone = await Promise.race([exit.then(() => true), new Promise((r) => setTimeout(r, 3000, false))]);
          if (!gone) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // exited in between
            }
            await exit;
          }
        }
        rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      })();
      return closing;
    },
    async open(url) {
      // Open on about:blank, attach, enable, and only then navigate: so the load event of `url`
      // cannot fire before we listen for it.
      const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
      const cmd = (method: string, params: object = {}) => send(method, params, sessionId);
      await cmd('Page.enable');
      await cmd('Runtime.enable');
      // Headless, --window-size counts the (invisible) browser UI too: pin the page's viewport to
      // exactly 1280x720. A real window keeps the viewport it has (an override would scale the page in it).
      if (headless) await cmd('Emulation.setDeviceMetricsOverride', { width: 1280, height: 720, deviceScaleFactor: 1, mobile: false });
      const loaded = waitEvent('Page.loadEventFired', sessionId);
      const nav = await cmd('Page.navigate', { url }).catch((e) => (loaded.cancel(), Promise.reject(e)));
      if (nav.errorText) {
        loaded.cancel();
        throw new Error(`Page.navigate ${url}: ${nav.errorText}`);
      }
      await loaded.promise;
      return {
        async evaluate<T>(expression: string): Promise<T> {
          const r = await cmd('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true, userGesture: true });
          if (r.exceptionDetails) {
            const d = r.exceptionDetails;
            throw new Error(`evaluate: ${d.exception?.description ?? d.exception?.value ?? d.text}`);
          }
          return r.result.value as T;
        },
        async screenshot() {
          // A tab not in front is `hidden` (no requestAnimationFrame, stale video): bring it forward first.
          await cmd('Page.bringToFront');
          const { data } = await cmd('Page.captureScreenshot', { format: 'png' });
          return Buffer.from(data, 'base64');
        },
        async close() {
          await send('Target.closeTarget', { targetId });
        },
      };
    },
  };

  // Chromium is ready when it answers on the pipe.
  try {
    await send('Browser.getVersion', {}, undefined, Math.max(timeoutMs, 30_000));
  } catch (e) {
    await browser.close();
    throw new Error(`${(e as Error).message}\nchromium output:\n${stderr()}`);
  }
  return browser;
}

/** Mean luma (Y, 16 = black … 235 = white) of a PNG, as real ffmpeg's signalstats measures it. */
export async function meanLuma(png: Buffer): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'udpcast-luma-'));
  try {
    const file = join(dir, 'shot.png');
    writeFileSync(file, png);
    // file=- : metadata=print logs at info level, which -v error would hide; stdout is not.
    const vf = 'signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-';
    const out = await new Promise<string>((resolve, reject) =>
      execFile('ffmpeg', ['-v', 'error', '-i', file, '-vf', vf, '-f', 'null', '-'], { timeout: 15_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`ffmpeg signalstats: ${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    const m = /lavfi\.signalstats\.YAVG=([\d.]+)/.exec(out);
    if (!m) throw new Error(`ffmpeg printed no YAVG:\n${out}`);
    return Number(m[1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

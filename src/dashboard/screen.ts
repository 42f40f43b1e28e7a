/**
 * The blessed adapter: draws view.ts's lines in a bordered full-screen box, maps keys to actions
 * and gives the terminal back on every way out. All numbers and layout come from view.ts.
 *
 * Which terminal: stdout when it is a terminal and not the video (`watch --output -` writes the
 * stream there), else stderr when that is a terminal (`watch --output - | ffplay -`: the dashboard
 * goes to the terminal on stderr and the video down the pipe). Keys are read from stdin only when
 * it is a terminal; otherwise there are no keys and Ctrl-C stays a plain SIGINT.
 *
 * Restoring the terminal: `destroy()` on q, Ctrl-C (a key in raw mode, not a signal), the role's
 * stop (SIGTERM/SIGINT via main, --duration, the stream ending, a fatal error), and a process
 * 'exit' hook as the last resort. blessed is loaded lazily, so piped runs never load it.
 */
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import type * as Blessed from 'blessed';
import type { Snapshot } from './snapshots.ts';
import { History } from './history.ts';
import { helpLines, oneLine, render, takeBaseline, type Baseline } from './view.ts';

/** Log lines kept for the log panel; a chatty ffplay must not grow memory. */
const LOG_LINES = 200;
/** Log lines written to stderr after the terminal is restored, so the last words stay visible. */
const LOG_REPLAY = 10;
/** blessed needs a terminfo name; this one exists everywhere blessed ships its own copy. */
const FALLBACK_TERM = 'xterm-256color';

export interface TerminalPick {
  output: NodeJS.WriteStream;
  input?: NodeJS.ReadStream;
}

interface Stdio {
  stdin: { isTTY?: boolean };
  stdout: { isTTY?: boolean };
  stderr: { isTTY?: boolean };
}

/** The terminal a dashboard may draw on, or null: then there is no dashboard and no escape code. */
export function pickTerminal(stdoutIsVideo: boolean, io: Stdio = process, env: NodeJS.ProcessEnv = process.env): TerminalPick | null {
  if (env.TERM === 'dumb') return null; // emacs shells and the like: no cursor addressing
  const input = io.stdin.isTTY ? (io.stdin as NodeJS.ReadStream) : undefined;
  if (!stdoutIsVideo && io.stdout.isTTY) return { output: io.stdout as NodeJS.WriteStream, input };
  if (io.stderr.isTTY) return { output: io.stderr as NodeJS.WriteStream, input };
  return null;
}

/** UTF-8 per the locale, as ncurses decides: else ASCII sparklines. */
export function localeIsUtf8(env: NodeJS.ProcessEnv = process.env): boolean {
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || '';
  return /utf-?8/i.test(locale);
}

let active: Dashboard | null = null;

/** The dashboard on screen in this process, if any. */
export function activeDashboard(): Dashboard | null {
  return active;
}

/**
 * Routes a log line into the dashboard's log panel while one is drawn (written straight to the
 * terminal it would tear the screen). False: no dashboard, write it yourself.
 */
export function dashboardLog(line: string): boolean {
  if (!active) return false;
  active.log(line);
  return true;
}

export interface DashboardOptions {
  terminal: TerminalPick;
  /** q or Ctrl-C: stop the role (the terminal is already restored when this runs). */
  onQuit: () => void;
  ascii?: boolean;
}

export class Dashboard {
  private readonly screen: Blessed.Widgets.Screen;
  private readonly box: Blessed.Widgets.BoxElement;
  private readonly help: Blessed.Widgets.BoxElement;
  private readonly history = new History();
  private readonly ascii: boolean;
  private readonly logLines: string[] = [];
  private readonly companions = new Map<string, string>();
  private baseline: Baseline | null = null;
  private last?: Snapshot;
  private destroyed = false;
  private readonly onExit = () => this.destroy();

  /** Throws when blessed cannot drive the terminal; the reporter then falls back to summaries. */
  constructor(private readonly o: DashboardOptions) {
    const blessed = createRequire(import.meta.url)('blessed') as typeof Blessed;
    this.ascii = o.ascii ?? !localeIsUtf8();
    this.screen = blessed.screen({
      input: o.terminal.input ?? (new PassThrough() as unknown as NodeJS.ReadStream),
      output: o.terminal.output,
      terminal: process.env.TERM || FALLBACK_TERM,
      smartCSR: true,
      fullUnicode: false, // every glyph we draw is one column wide; skips blessed's slow path
      warnings: false,
      autoPadding: true,
      title: 'udpcast',
    });
    // In a UTF-8 locale draw the frame with Unicode box characters, as ncurses does, rather than
    // the VT100 alternate character set, which some terminals (and tmux's capture) show as "lqqk".
    // NCURSES_NO_UTF8_ACS, when set, still decides (blessed reads it itself).
    if (process.env.NCURSES_NO_UTF8_ACS === undefined && !this.ascii) {
      (this.screen as unknown as { tput: { brokenACS: boolean } }).tput.brokenACS = true;
    }
    this.box = blessed.box({
      parent: this.screen,
      top: 0,
      left: 0,
      width: '100%',
      height: '100%',
      border: { type: 'line' },
      tags: false,
      wrap: false,
      padding: { left: 1, right: 1 },
    });
    this.help = blessed.box({
      parent: this.screen,
      top: 'center',
      left: 'center',
      width: Math.max(...helpLines().map((l) => l.length)) + 4,
      height: helpLines().length + 2,
      border: { type: 'line' },
      tags: false,
      wrap: false,
      padding: { left: 1, right: 1 },
      content: helpLines().join('\n'),
      hidden: true,
    });
    this.screen.key(['q', 'C-c'], () => this.quit());
    this.screen.key(['r'], () => {
      if (this.last) this.baseline = takeBaseline(this.last);
      this.draw();
    });
    this.screen.key(['?'], () => {
      this.help.toggle();
      this.screen.render();
    });
    this.screen.key(['escape'], () => {
      this.help.hide();
      this.screen.render();
    });
    this.screen.on('resize', () => this.draw());
    process.on('exit', this.onExit);
    active = this;
    this.draw();
  }

  /** One snapshot a second: recorded for the sparklines, then drawn. */
  update(s: Snapshot): void {
    if (this.destroyed) return;
    this.history.record(s);
    this.last = s;
    this.draw();
  }

  /** Another role in this process (the demo's sharer): one line under the main view. */
  companion(s: Snapshot): void {
    this.companions.set(s.role, oneLine(s));
  }

  log(line: string): void {
    this.logLines.push(line);
    if (this.logLines.length > LOG_LINES) this.logLines.splice(0, this.logLines.length - LOG_LINES);
    this.draw();
  }

  /** Gives the terminal back. Idempotent; recent log lines are repeated on stderr afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.off('exit', this.onExit);
    if (active === this) active = null;
    try {
      this.screen.destroy();
    } finally {
      // blessed leaves its input flowing; a paused stdin lets the process end.
      this.o.terminal.input?.pause();
      for (const l of this.logLines.slice(-LOG_REPLAY)) process.stderr.write(`${l}\n`);
    }
  }

  private quit(): void {
    this.destroy();
    this.o.onQuit();
  }

  private draw(): void {
    if (this.destroyed) return;
    // Inside the border (2 columns/rows) and the padding (2 columns).
    const width = Math.max(0, (this.screen.width as number) - 4);
    const height = Math.max(0, (this.screen.height as number) - 2);
    const lines = this.last
      ? render(this.last, this.history, {
          width,
          height,
          ascii: this.ascii,
          baseline: this.baseline,
          companions: [...this.companions.values()],
          log: this.logLines,
        })
      : ['waiting for the first statistics...'];
    this.box.setContent(lines.join('\n'));
    this.screen.render();
  }
}

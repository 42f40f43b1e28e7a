/**
 * The dashboards as text: pure functions from a role's snapshot (plus its last minute of history)
 * to the lines blessed draws. No terminal, no clock, no colours: every line fits `width` columns, cut
 * with an ellipsis rather than wrapped, so a narrow terminal shows less instead of garbage.
 *
 * The numbers are the snapshot's own (the same object feeds --stats-json and the summary line), with
 * one exception: after `r`, the cumulative counters listed in *_COUNTERS are shown relative to a
 * baseline taken at that moment. Rates and gauges (fps, bitrate, jitter, latency, RTT, per-viewer
 * loss %) are never rebased; --stats-json keeps the totals since start.
 */
import {
  keysOfKind,
  RELAY_FIELDS,
  RELAY_ROWS,
  SHARE_FIELDS,
  SHARE_ROWS,
  WATCH_FIELDS,
  WATCH_ROWS,
  type KeysOfKind,
  type RelaySnapshot,
  type RowOf,
  type RowsKey,
  type ShareSnapshot,
  type Snapshot,
  type WatchSnapshot,
} from './snapshots.ts';
import type { History } from './history.ts';

// ---------------------------------------------------------------------------------------------
// Number formatting: `null` (not known yet) is always "-".

export const NONE = '-';

/** 12345 → "12,345". */
export function fmtInt(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return NONE;
  const sign = n < 0 ? '-' : '';
  const digits = String(Math.round(Math.abs(n)));
  return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** kbit/s below 1000, Mbit/s (two decimals) from there. */
export function fmtKbps(k: number | null | undefined): string {
  if (k === null || k === undefined || !Number.isFinite(k)) return NONE;
  if (Math.abs(k) >= 1000) return `${(k / 1000).toFixed(2)} Mbit/s`;
  return `${k < 10 ? k.toFixed(1) : k.toFixed(0)} kbit/s`;
}

/** Milliseconds with the precision that matters at that size: 1.23, 12.3, 123. */
export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return NONE;
  const a = Math.abs(ms);
  return `${a < 10 ? ms.toFixed(2) : a < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
}

export function fmtPct(p: number | null | undefined): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return NONE;
  return `${p.toFixed(2)}%`;
}

export function fmtFps(f: number | null | undefined): string {
  if (f === null || f === undefined || !Number.isFinite(f)) return NONE;
  return f.toFixed(1);
}

/** Uptime: "42s", "3m05s", "1h02m". */
export function fmtDuration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s) || s < 0) return NONE;
  const t = Math.floor(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** Decimal units, as network people count bytes. */
export function fmtBytes(b: number | null | undefined): string {
  if (b === null || b === undefined || !Number.isFinite(b)) return NONE;
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = b;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

// ---------------------------------------------------------------------------------------------
// Layout primitives.

/** Cuts `line` to `width` columns, marking the cut. Never returns more than `width` characters. */
export function fit(line: string, width: number, ascii = false): string {
  if (width <= 0) return '';
  const chars = [...line];
  if (chars.length <= width) return line;
  return chars.slice(0, width - 1).join('') + (ascii ? '~' : '…');
}

/** Left text and right text on one line, the right one dropped first when they do not fit. */
export function spread(left: string, right: string, width: number, ascii = false): string {
  const gap = width - [...left].length - [...right].length;
  if (gap >= 1) return left + ' '.repeat(gap) + right;
  return fit(left, width, ascii);
}

const LABEL_WIDTH = 12;
const COLUMN_GAP = 3;
/** More than three columns of label/value pairs stop being readable as groups. */
const MAX_PAIR_COLUMNS = 3;

export type Field = readonly [label: string, value: string];

/**
 * Label/value pairs in as many columns as fit (column-major, so neighbours in the list stay
 * together vertically), one column on a narrow terminal.
 */
export function pairs(fields: readonly Field[], width: number, ascii = false): string[] {
  if (fields.length === 0) return [];
  const cells = fields.map(([l, v]) => l.padEnd(LABEL_WIDTH - 1) + ' ' + v);
  const cellWidth = Math.max(...cells.map((c) => [...c].length));
  const cols = Math.max(1, Math.min(MAX_PAIR_COLUMNS, Math.floor((width + COLUMN_GAP) / (cellWidth + COLUMN_GAP))));
  const rows = Math.ceil(cells.length / cols);
  const out: string[] = [];
  for (let r = 0; r < rows; r++) {
    const parts: string[] = [];
    for (let c = 0; c < cols; c++) {
      const cell = cells[c * rows + r];
      if (cell !== undefined) parts.push(cell.padEnd(cellWidth));
    }
    out.push(fit(parts.join(' '.repeat(COLUMN_GAP)).trimEnd(), width, ascii));
  }
  return out;
}

export interface Column {
  header: string;
  /** Numbers read best right-aligned. */
  align?: 'left' | 'right';
}

/** A table sized to its content; rows wider than `width` are cut, never wrapped. */
export function table(columns: readonly Column[], rows: readonly (readonly string[])[], width: number, ascii = false): string[] {
  const widths = columns.map((c, i) => Math.max([...c.header].length, ...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (cells: readonly string[]) =>
    fit(
      columns
        .map((c, i) => {
          const v = cells[i] ?? '';
          return c.align === 'right' ? v.padStart(widths[i]) : v.padEnd(widths[i]);
        })
        .join('  ')
        .trimEnd(),
      width,
      ascii,
    );
  return [line(columns.map((c) => c.header)), ...rows.map(line)];
}

// ---------------------------------------------------------------------------------------------
// Sparklines.

export const SPARK_BLOCKS = '▁▂▃▄▅▆▇█';
/** Eight rising ASCII shapes for terminals without UTF-8. */
export const SPARK_ASCII = '_.-:=+*#';

export interface SparkOptions {
  ascii?: boolean;
  /** The scale's top is at least this much, so noise near zero does not fill the chart. */
  floor?: number;
}

/**
 * One character per column, scaled so the largest value (or `floor`) is a full block. Zero is the
 * lowest block and any positive value at least the second, so a single lost packet shows; `null`
 * (no data) is a blank. Longer series are bucketed by their maximum, so a spike survives narrowing;
 * shorter ones are right-aligned (the newest sample is always in the last column).
 */
export function sparkline(values: readonly (number | null)[], width: number, o: SparkOptions = {}): string {
  if (width <= 0) return '';
  const glyphs = [...(o.ascii ? SPARK_ASCII : SPARK_BLOCKS)];
  let cols: (number | null)[];
  if (values.length > width) {
    cols = [];
    for (let i = 0; i < width; i++) {
      const bucket = values.slice(Math.floor((i * values.length) / width), Math.floor(((i + 1) * values.length) / width));
      const known = bucket.filter((v): v is number => v !== null && Number.isFinite(v));
      cols.push(known.length ? Math.max(...known) : null);
    }
  } else {
    cols = values.map((v) => (v !== null && Number.isFinite(v) ? v : null));
  }
  const known = cols.filter((v): v is number => v !== null);
  const top = Math.max(o.floor ?? 0, ...known);
  const levels = glyphs.length - 1;
  const chars = cols.map((v) => {
    if (v === null) return ' ';
    if (v <= 0 || top <= 0) return glyphs[0];
    return glyphs[Math.min(levels, Math.max(1, Math.ceil((v / top) * levels)))];
  });
  return ' '.repeat(width - chars.length) + chars.join('');
}

/** Sparklines are at most one column per sample: 60 columns for 60 s. */
const SPARK_MAX_WIDTH = 60;
/** Below this many columns a chart says nothing; the line keeps its numbers only. */
const SPARK_MIN_WIDTH = 8;
/** "now 12.34 Mbit/s  max 12.34 Mbit/s" is 34 columns. */
const SPARK_SUFFIX_WIDTH = 34;

function sparkRow(label: string, values: readonly (number | null)[], format: (v: number | null) => string, width: number, o: SparkOptions): string {
  const known = values.filter((v): v is number => v !== null);
  const now = values.length ? values[values.length - 1] : null;
  const suffix = `now ${format(now)}  max ${format(known.length ? Math.max(...known) : null)}`;
  const head = label.padEnd(LABEL_WIDTH - 1) + ' ';
  // A fixed room for the numbers keeps every chart the same width, their newest columns aligned.
  const room = Math.min(SPARK_MAX_WIDTH, width - head.length - SPARK_SUFFIX_WIDTH - 2);
  if (room < SPARK_MIN_WIDTH) return fit(head + suffix, width, o.ascii);
  return fit((head + sparkline(values, room, o) + '  ' + suffix).trimEnd(), width, o.ascii);
}

// ---------------------------------------------------------------------------------------------
// Counter reset (`r`).

/**
 * Cumulative counters of each role: the fields `r` rebases. Derived from snapshots.ts, where every
 * figure of a snapshot is a counter, a gauge or a ratio.
 */
export const WATCH_COUNTERS = keysOfKind(WATCH_FIELDS, 'counter');
export const SHARE_COUNTERS = keysOfKind(SHARE_FIELDS, 'counter');
export const RELAY_COUNTERS = keysOfKind(RELAY_FIELDS, 'counter');

/**
 * What `r` does to one role's snapshot `S`, whose figures `F` classifies: its counters are rebased,
 * each ratio is recomputed over the window the counters now cover (a ratio added to snapshots.ts
 * does not compile until it says how), and each row list's counters are rebased row by row.
 */
interface ResetRule<S, F> {
  counters: readonly (keyof S & string)[];
  ratios: Record<KeysOfKind<F, 'ratio'>, (shown: S) => number>;
  /** `id` tells which row is which from one snapshot to the next. */
  rows: { [K in RowsKey<S>]: { id: (row: RowOf<S, K>) => string; counters: readonly (keyof RowOf<S, K> & string)[] } };
}

/** Two decimals, as the roles round their own percentages; 0 with nothing to divide by. */
const percent = (part: number, whole: number) => (whole > 0 ? Math.round((10_000 * part) / whole) / 100 : 0);

const RESET: {
  watch: ResetRule<WatchSnapshot, typeof WATCH_FIELDS>;
  share: ResetRule<ShareSnapshot, typeof SHARE_FIELDS>;
  relay: ResetRule<RelaySnapshot, typeof RELAY_FIELDS>;
} = {
  watch: {
    counters: WATCH_COUNTERS,
    ratios: { lostOnWirePercent: (w) => percent(w.lostOnWire, w.packetsExpected) },
    rows: WATCH_ROWS,
  },
  share: {
    counters: SHARE_COUNTERS,
    ratios: {},
    rows: { viewerReports: { id: (r) => `report ${r.ssrc}`, counters: keysOfKind(SHARE_ROWS.viewerReports, 'counter') } },
  },
  relay: {
    counters: RELAY_COUNTERS,
    ratios: {},
    rows: {
      perStream: { id: (r) => `stream ${r.name}`, counters: keysOfKind(RELAY_ROWS.perStream, 'counter') },
      perViewer: { id: (r) => `viewer ${r.stream} ${r.address}`, counters: keysOfKind(RELAY_ROWS.perViewer, 'counter') },
    },
  },
};

/** A role's reset rule, for code that handles every role alike. */
type AnyRule = {
  counters: readonly string[];
  ratios: Record<string, (s: never) => number>;
  rows: Record<string, { id: (row: never) => string; counters: readonly string[] }>;
};
const ruleOf = (s: Snapshot) => RESET[s.role] as unknown as AnyRule;
type Numbers = Record<string, number>;

export interface Baseline {
  role: Snapshot['role'];
  values: Map<string, number>;
}

export function takeBaseline(s: Snapshot): Baseline {
  const values = new Map<string, number>();
  const rule = ruleOf(s);
  const src = s as unknown as Record<string, unknown>;
  for (const k of rule.counters) values.set(k, (src as Numbers)[k]);
  for (const [list, { id, counters }] of Object.entries(rule.rows)) {
    for (const row of src[list] as Numbers[]) for (const k of counters) values.set(`${id(row as never)} ${k}`, row[k]);
  }
  return { role: s.role, values };
}

/**
 * The snapshot with its counters counted from the baseline, and its ratios over that window. A
 * counter below its baseline was restarted underneath us (a stream re-published, a new player):
 * it is shown as it is. A row that was not there at the reset counts from its start.
 */
export function applyBaseline<T extends Snapshot>(s: T, b: Baseline | null | undefined): T {
  if (!b || b.role !== s.role) return s;
  const since = (key: string, v: number) => {
    const base = b.values.get(key);
    return base === undefined || v < base ? v : v - base;
  };
  const rule = ruleOf(s);
  const out = { ...s } as unknown as Record<string, unknown>;
  for (const k of rule.counters) out[k] = since(k, (s as unknown as Numbers)[k]);
  for (const [k, recompute] of Object.entries(rule.ratios)) out[k] = recompute(out as never);
  for (const [list, { id, counters }] of Object.entries(rule.rows)) {
    out[list] = (out[list] as Numbers[]).map((row) => {
      const shown = { ...row };
      for (const k of counters) shown[k] = since(`${id(row as never)} ${k}`, row[k]);
      return shown;
    });
  }
  return out as unknown as T;
}

// ---------------------------------------------------------------------------------------------
// The three dashboards.

export interface ViewOptions {
  /** Columns available inside the frame. */
  width: number;
  /** Rows available; without it every line is returned. */
  height?: number;
  /** No UTF-8: ASCII sparklines and cut marks. */
  ascii?: boolean;
  /** Taken on `r`: counters are shown since then. */
  baseline?: Baseline | null;
  /** One-line summaries of other roles running in this process (the demo's sharer). */
  companions?: readonly string[];
  /** Recent log lines (newest last): they would tear the screen if written to the terminal. */
  log?: readonly string[];
}

export const KEYS_FOOTER = 'q quit   r reset counters   ? keys';

export function helpLines(): string[] {
  return [
    'Keys',
    '',
    'q, Ctrl-C   quit (stops the player and the stream too)',
    'r          reset the counters (packets, frames, ...) to zero;',
    '           rates, jitter, latency and RTT are not counters',
    '?          show or hide this help',
    '',
    '--stats-json keeps the totals since start whatever r does.',
  ];
}

export function render(s: Snapshot, h: History, o: ViewOptions): string[] {
  const shown = applyBaseline(s, o.baseline);
  const body = shown.role === 'watch' ? watchBody(shown, h, o) : shown.role === 'share' ? shareBody(shown, h, o) : relayBody(shown, h, o);
  // Headings are cut too: whatever the width, one line is one screen row.
  return frame(body, o).map((l) => fit(l, o.width, o.ascii));
}

/** The plain one-line form of a snapshot (the demo's side panel; the summary line's numbers). */
export function oneLine(s: Snapshot): string {
  switch (s.role) {
    case 'watch':
      return (
        `watch ${s.stream} [${s.state}] ${fmtFps(s.fps)} fps ${fmtKbps(s.bitrateKbps)}, ${lossText(s)}, ` +
        `jitter ${fmtMs(s.jitterMs)}, latency ${fmtMs(s.latencyMs)}`
      );
    case 'share':
      if (s.relayState === 'not answering') return `share ${s.stream}: relay ${s.relay} not answering for ${s.relaySilentS} s, retrying`;
      return (
        `share ${s.stream}: ${fmtFps(s.fps)} fps ${fmtKbps(s.bitrateKbps)}, ${fmtInt(s.framesEncoded)} frames encoded, ` +
        `${s.viewers} viewer(s), worst loss ${fmtPct(s.worstLossPercent)}, worst RTT ${fmtMs(s.worstRttMs)}`
      );
    case 'relay':
      return `relay: ${s.streams} stream(s)${s.awaitedStreams ? ` (+${s.awaitedStreams} awaited, no sharer yet)` : ''}, ${s.viewers} viewer(s), in ${fmtKbps(s.bitrateInKbps)}, out ${fmtKbps(s.bitrateOutKbps)}, dropped ${fmtInt(s.dropped)}`;
  }
}

/** "lost 223 (4.97%) on the wire: 220 repaired, 3 unrepaired". */
function lossText(s: WatchSnapshot): string {
  return (
    `lost ${fmtInt(s.lostOnWire)} (${fmtPct(s.lostOnWirePercent)}) on the wire: ` +
    `${fmtInt(s.recoveredByRtx + s.recoveredByFec)} repaired, ${fmtInt(s.unrepaired)} unrepaired`
  );
}

/** Body, then companions and the log in whatever room is left, the keys always on the last line. */
function frame(body: string[], o: ViewOptions): string[] {
  const w = o.width;
  const extra: string[] = [];
  if (o.companions?.length) extra.push('', 'Also in this process', ...o.companions.map((c) => fit(c, w, o.ascii)));
  const footer = [fit(o.baseline ? `${KEYS_FOOTER}   (counters since reset)` : KEYS_FOOTER, w, o.ascii)];
  let lines = [...body, ...extra];
  if (o.height === undefined) {
    if (o.log?.length) lines.push('', 'Log', ...o.log.map((l) => fit(l, w, o.ascii)));
    return [...lines, '', ...footer];
  }
  const room = o.height - footer.length;
  if (lines.length > room) lines = lines.slice(0, Math.max(0, room));
  const free = room - lines.length - 1; // a blank line above the footer
  if (o.log?.length && free >= 3) {
    const take = o.log.slice(-(free - 2)).map((l) => fit(l, w, o.ascii));
    lines.push('', 'Log', ...take);
  }
  while (lines.length < room) lines.push('');
  return [...lines, ...footer].slice(-Math.max(0, o.height));
}

function title(left: string, right: string, o: ViewOptions): string[] {
  return [spread(left, right, o.width, o.ascii), ''];
}

function watchBody(s: WatchSnapshot, h: History, o: ViewOptions): string[] {
  const resolution = s.width !== null && s.height !== null ? `${s.width}x${s.height}` : NONE;
  // Three groups, one per column on a wide terminal (pairs() fills columns top to bottom): the
  // stream and its timing; packets, loss and what became of it; frames and the player.
  const fields: Field[] = [
    ['Stream', s.stream],
    ['Relay', s.relay],
    ['State', s.state],
    ['Codec', s.codec ?? NONE],
    ['Resolution', resolution],
    ['FPS', fmtFps(s.fps)],
    ['Bitrate', fmtKbps(s.bitrateKbps)],
    ['Latency', fmtMs(s.latencyMs)],
    ['First frame', fmtMs(s.firstFrameMs)],
    // How long a gap may hold frames back while NACKs repair it.
    ['NACK budget', fmtMs(s.latencyBudgetMs)],
    ['Jitter', fmtMs(s.jitterMs)],
    ['RTT', fmtMs(s.rttMs)],

    ['Packets', fmtInt(s.packetsReceived)],
    ['Expected', fmtInt(s.packetsExpected)],
    // Loss before repair, then what became of it, and RFC 3550's figure: loss after repair, as
    // other RTP tools count it.
    ['Lost (wire)', `${fmtInt(s.lostOnWire)} (${fmtPct(s.lostOnWirePercent)})`],
    ['By RTX', fmtInt(s.recoveredByRtx)],
    ['By FEC', fmtInt(s.recoveredByFec)],
    ['Unrepaired', s.repairPending ? `${fmtInt(s.unrepaired)} (+${fmtInt(s.repairPending)} pending)` : fmtInt(s.unrepaired)],
    ['Too late', fmtInt(s.tooLate)],
    ['Lost (RFC)', fmtInt(s.rfc3550Lost)],
    ['NACKs sent', fmtInt(s.nacksSent)],
    ['Dup/reorder', `${fmtInt(s.duplicates)} / ${fmtInt(s.reordered)}`],
    ['Malformed', fmtInt(s.malformed)],
    ['Bad decrypt', fmtInt(s.undecryptable)],

    ['Frames', fmtInt(s.framesComplete)],
    ['Dropped', fmtInt(s.framesDropped)],
    ['Skipped', fmtInt(s.framesSkipped)],
    ['Given up', fmtInt(s.framesGivenUp)],
    ['Key req.', fmtInt(s.keyframeRequests)],
    // A new SSRC on the stream: the sharer restarted.
    ['New SSRC', fmtInt(s.publisherRestarts)],
    // Moves to another quality layer, made by the relay from this viewer's own feedback.
    ['Layer moves', fmtInt(s.layerMoves)],
    // The sharer's sound (share --audio): Opus packets received, never seen, too late or twice.
    ['Audio', `${fmtInt(s.audioPackets)} / ${fmtInt(s.audioLost)} lost / ${fmtInt(s.audioLate)} late`],
    // Of the sound lost: given back by RED's copies, or concealed by the decoder (heard as a glitch).
    ['Audio repair', `${fmtInt(s.audioRecovered)} by RED / ${fmtInt(s.audioConcealed)} concealed`],
    // Packets of silence the sharer did not send (DTX), filled with silence here: not a repair, not heard.
    ['Audio DTX', `${fmtInt(s.audioSilence)} filled`],
    // Jitter of the sound's packets; sync: the sound's arrival behind the picture's (+) or ahead (−).
    ['Audio timing', `jitter ${fmtMs(s.audioJitterMs)}, sync ${s.audioSyncMs === null ? NONE : `${s.audioSyncMs > 0 ? '+' : ''}${fmtMs(s.audioSyncMs)}`}`],
    ['Player', s.player === null ? NONE : `${s.player === 'behind' ? 'BEHIND' : 'live'}, ${fmtInt(s.playerRestarts)} restarts`],
    ['Held back', fmtInt(s.framesHeldBack)],
    // Sound packets given to the window / not (stale, before its first picture, draining) / drains.
    ['Player sound', `${fmtInt(s.playerSoundPlayed)} / ${fmtInt(s.playerSoundNotPlayed)} not / ${fmtInt(s.playerSoundDrains)} drains`],
    ['Stale', fmtInt(s.framesStale)],
    // ffplay's own count of frames it dropped as late.
    ['Player drop', fmtInt(s.playerDropped)],
    ['Sink errors', fmtInt(s.sinkErrors)],
  ];
  const spark = { ascii: o.ascii };
  return [
    ...title(`udpcast watch  ${s.stream} @ ${s.relay}`, s.player === 'behind' ? 'PLAYER BEHIND' : s.state.toUpperCase(), o),
    ...pairs(fields, o.width, o.ascii),
    '',
    'Last 60 s',
    sparkRow('Bitrate', h.series('bitrate'), fmtKbps, o.width, spark),
    // A 1% loss or 1 ms jitter fills the chart: smaller wobbles stay low instead of looking alarming.
    sparkRow('Loss', h.series('loss'), fmtPct, o.width, { ...spark, floor: 1 }),
    sparkRow('Jitter', h.series('jitter'), fmtMs, o.width, { ...spark, floor: 1 }),
  ];
}

function shareBody(s: ShareSnapshot, h: History, o: ViewOptions): string[] {
  // The stream, what was sent, what came back.
  const fields: Field[] = [
    ['Stream', s.stream],
    ['Codec', s.codec],
    ['Source', s.source],
    ['Relay', s.relayState === 'not answering' ? `${s.relay}: NOT ANSWERING (${s.relaySilentS} s)` : s.relay],
    ['Outages', fmtInt(s.relayOutages)],
    ['FPS', fmtFps(s.fps)],
    ['Bitrate', fmtKbps(s.bitrateKbps)],

    ['Encoded', fmtInt(s.framesEncoded)],
    ['Frames sent', fmtInt(s.framesSent)],
    ['Keyframes', fmtInt(s.keyframesSent)],
    // Opus packets sent / silence the encoder marked and the sharer left out (DTX).
    ['Audio sent', `${fmtInt(s.audioPacketsSent)} / ${fmtInt(s.audioSilenceNotSent)} silent`],
    ['Packets', fmtInt(s.packetsSent)],
    ['FEC packets', fmtInt(s.fecPacketsSent)],
    // Packets the relay said never reached it, sent again.
    ['Re-sent', fmtInt(s.resent)],
    ['Sent', fmtBytes(s.bytesSent)],
    ['Send errors', fmtInt(s.sendErrors)],

    ['Viewers', fmtInt(s.viewers)],
    ['Worst loss', fmtPct(s.worstLossPercent)],
    ['Worst RTT', fmtMs(s.worstRttMs)],
    ['Key req.', fmtInt(s.keyframeRequests)],
    // Encoder runs started to answer keyframe requests, and all encoder restarts.
    ['Key restart', fmtInt(s.keyframeRestarts)],
    ['Restarts', fmtInt(s.encoderRestarts)],

    // Congestion control: what the path takes, what the encoder is asked for, and why.
    ['Path takes', s.estimateKbps === null ? '-' : `${fmtKbps(s.estimateKbps)} (${s.ccState})`],
    ['Encoder at', fmtKbps(s.targetKbps)],
    ['Queue delay', fmtMs(s.queueDelayMs)],
    ['Path loss', fmtPct(s.pathLossPercent)],
    ['Re-targets', fmtInt(s.retargets)],
    ['Probes', fmtInt(s.probes)],
    ['Paced out', fmtInt(s.pacerDropped)],
    ['Layers sent', `${fmtInt(s.layersSent)} of ${fmtInt(s.layers)}`],
    // RFC 8083: media held while the uplink cannot carry it.
    ['Held', s.uplinkPaused ? `${fmtInt(s.framesHeld)}, PAUSED: ${s.uplinkPaused}` : fmtInt(s.framesHeld)],
  ];
  const reports = s.viewerReports.length
    ? table(
        [{ header: 'VIEWER SSRC' }, { header: 'LOSS', align: 'right' }, { header: 'JITTER', align: 'right' }, { header: 'RTT', align: 'right' }],
        s.viewerReports.map((r) => [r.ssrc, fmtPct(r.lossPercent), fmtMs(r.jitterMs), fmtMs(r.rttMs)]),
        o.width,
        o.ascii,
      )
    : ['(no receiver reports yet)'];
  return [
    ...title(
      `udpcast share  ${s.stream} (${s.codec}, ${s.source}) ${o.ascii ? '->' : '→'} ${s.relay}`,
      s.relayState === 'not answering' ? 'RELAY NOT ANSWERING' : `${s.viewers} viewer${s.viewers === 1 ? '' : 's'}`,
      o,
    ),
    ...pairs(fields, o.width, o.ascii),
    '',
    'Last 60 s',
    sparkRow('Bitrate', h.series('bitrate'), fmtKbps, o.width, { ascii: o.ascii }),
    sparkRow('FPS', h.series('fps'), fmtFps, o.width, { ascii: o.ascii }),
    sparkRow('Worst loss', h.series('worstLoss'), fmtPct, o.width, { ascii: o.ascii, floor: 1 }),
    '',
    'Viewer reports',
    ...reports,
  ];
}

function relayBody(s: RelaySnapshot, h: History, o: ViewOptions): string[] {
  // Traffic; what was dropped and why (the parts of Dropped); repair and admission.
  const fields: Field[] = [
    ['Bitrate in', fmtKbps(s.bitrateInKbps)],
    ['Bitrate out', fmtKbps(s.bitrateOutKbps)],
    // Names viewers wait on that nobody publishes are not streams; they are shown apart.
    ['Streams', s.awaitedStreams ? `${fmtInt(s.streams)} (+${fmtInt(s.awaitedStreams)} awaited)` : fmtInt(s.streams)],
    ['Viewers', fmtInt(s.viewers)],
    ['Datagrams in', fmtInt(s.datagramsIn)],
    ['Bytes in', fmtBytes(s.bytesIn)],
    ['Packets out', fmtInt(s.packetsOut)],
    ['Bytes out', fmtBytes(s.bytesOut)],

    ['Dropped', fmtInt(s.dropped)],
    // Copies of the sharer's packets the relay already had (an ask answered twice, or the path duplicated one): dropped.
    ['Copies', fmtInt(s.uplinkCopies)],
    ['Malformed', fmtInt(s.malformed)],
    ['Unknown src', fmtInt(s.unknownSource)],
    ['Oversize', fmtInt(s.oversize)],
    ['Hijacks', fmtInt(s.hijackAttempts)],
    ['Over limit', fmtInt(s.overLimit)],
    // Control messages from an address that sends them faster than it may.
    ['Throttled', fmtInt(s.rateLimited)],
    ['Auth fails', fmtInt(s.authFailures)],

    ['Send errors', fmtInt(s.sendErrors)],
    ['Retransmits', fmtInt(s.retransmissions)],
    ['RTX misses', fmtInt(s.rtxMisses)],
    // The sharer's packets lost on the way here: asked for again (each try) / those that came back.
    ['Uplink NACK', `${fmtInt(s.uplinkNacked)} / ${fmtInt(s.uplinkRepaired)} back`],
    ['Cache joins', fmtInt(s.cacheJoins)],
    ['Challenges', fmtInt(s.challenges)],
    // Viewers' keyframe requests not passed on: one was on its way, or the viewer asked again too soon.
    ['PLIs held', fmtInt(s.keyframeRequestsHeld)],
    // RFC 8083 circuit breakers that stopped media to a viewer whose path could not carry it.
    ['Paths paused', fmtInt(s.circuitBreaks)],
    // RFC 8888 reports of what arrived when, sent to the sharers' congestion controllers.
    ['CC reports', fmtInt(s.feedbackReports)],
    ['Probe pkts', fmtInt(s.probePackets)],
    // Viewers moved to another quality layer by what their own paths take.
    ['Layer moves', fmtInt(s.layerMoves)],
    // 'queued': datagrams the native path left to dgram's queue (RelaySnapshot.handedToDgram).
    ['Datagrams', s.handedToDgram ? `${s.io}, ${fmtInt(s.handedToDgram)} queued` : s.io],
  ];
  // Per-stream drops: refused PUBLISHes, failed --key datagrams and failed sends to its viewers.
  // Garbage from strangers belongs to no stream: it is in the totals above.
  const streams = s.perStream.length
    ? table(
        [
          { header: 'STREAM' },
          { header: 'PUBLISHER' },
          { header: 'BITRATE IN', align: 'right' },
          { header: 'PKTS IN', align: 'right' },
          { header: 'PKTS OUT', align: 'right' },
          { header: 'VIEWERS', align: 'right' },
          { header: 'DROPS', align: 'right' },
        ],
        s.perStream.map((r) => [
          r.name,
          r.publisher,
          fmtKbps(r.bitrateInKbps),
          fmtInt(r.packetsIn),
          fmtInt(r.packetsOut),
          fmtInt(r.viewers),
          fmtInt(r.dropped),
        ]),
        o.width,
        o.ascii,
      )
    : ['(no streams yet)'];
  const viewers = s.perViewer.length
    ? table(
        [
          { header: 'STREAM' },
          { header: 'VIEWER' },
          { header: 'UPTIME', align: 'right' },
          { header: 'LOSS', align: 'right' },
          { header: 'JITTER', align: 'right' },
          { header: 'RTT', align: 'right' },
          { header: 'PKTS OUT', align: 'right' },
          { header: 'SEND ERR', align: 'right' },
          // Packets re-sent to it: a viewer on a full link gets fewer, never more (its budget).
          { header: 'RTX', align: 'right' },
          // The quality layer it gets, and what its path takes by its own feedback.
          { header: 'LAYER', align: 'right' },
          { header: 'PATH', align: 'right' },
        ],
        s.perViewer.map((r) => [
          r.stream, r.address, fmtDuration(r.uptimeS), fmtPct(r.lossPercent), fmtMs(r.jitterMs), fmtMs(r.rttMs), fmtInt(r.packetsOut), fmtInt(r.sendErrors), fmtInt(r.retransmissions),
          r.layer === null ? '-' : String(r.layer), r.estimateKbps === null ? '-' : fmtKbps(r.estimateKbps),
        ]),
        o.width,
        o.ascii,
      )
    : ['(no viewers yet)'];
  return [
    ...title(`udpcast relay  ${s.address}`, `${s.streams} stream${s.streams === 1 ? '' : 's'}, ${s.viewers} viewer${s.viewers === 1 ? '' : 's'}`, o),
    ...pairs(fields, o.width, o.ascii),
    sparkRow('In, 60 s', h.series('bitrateIn'), fmtKbps, o.width, { ascii: o.ascii }),
    sparkRow('Out, 60 s', h.series('bitrateOut'), fmtKbps, o.width, { ascii: o.ascii }),
    '',
    'Streams',
    ...streams,
    '',
    'Viewers',
    ...viewers,
  ];
}

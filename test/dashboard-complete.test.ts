/**
 * The dashboard shows every figure of every snapshot, and `r` resets every counter among them.
 *
 * src/dashboard/snapshots.ts names each numeric field of each snapshot (rows included) with its
 * kind: counter, gauge or ratio; a field missing there does not compile. Here every one of those
 * fields gets a distinct value, the view is rendered to text, and each value must be on it. So a
 * figure added to a snapshot and classified, but not drawn, fails this test; one drawn only as part
 * of a sum (the relay once showed "Over limit" as overLimit + oversize + hijackAttempts) fails too.
 *
 * Then `r`: a baseline is taken at values A, the snapshot moves on to A + D, and the view must show
 * D for every counter (rebased), A + D for every gauge (as it is) and something other than A + D
 * for every ratio (recomputed over the window since the reset).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RELAY_FIELDS,
  RELAY_ROWS,
  SHARE_FIELDS,
  SHARE_ROWS,
  WATCH_FIELDS,
  type FieldKind,
  type NumericKey,
  type RelaySnapshot,
  type RelayStreamRow,
  type RelayViewerRow,
  type ShareSnapshot,
  type ShareViewerRow,
  type Snapshot,
  type WatchSnapshot,
} from '../src/dashboard/snapshots.ts';
import { History } from '../src/dashboard/history.ts';
import { fmtDuration, render, takeBaseline } from '../src/dashboard/view.ts';

/** Wide enough that no line is cut: a value cut off the edge would count as not shown. */
const WIDTH = 400;

/**
 * The values: figure i (numbered across a snapshot and its rows) is A = 101 + i before the reset and
 * A + D = 602 + 2i after it, D = 501 + i. All are three digits, so every formatter prints them
 * whole (no thousands separator, no kbit/s → Mbit/s), and the ranges stay apart: with at most 100
 * figures A is 101-200, D 501-600, A + D 602-800, and a sum of two A values (203-400) is none of them.
 */
const A = (i: number) => 101 + i;
const D = (i: number) => 501 + i;
const AD = (i: number) => A(i) + D(i);
const MAX_FIGURES = 100;

interface Figure {
  /** Where it is, for the failure message: "perViewer[0].packetsOut". */
  path: string;
  kind: FieldKind;
  index: number;
}

/** Hands out figure numbers and remembers which field got which. */
class Figures {
  readonly list: Figure[] = [];
  constructor(private readonly value: (i: number) => number) {}
  /** Every field of `kinds` with its own value; typed so the caller's object literal is complete. */
  of<M extends Readonly<Record<string, FieldKind>>>(kinds: M, prefix = ''): Record<keyof M, number> {
    const out: Record<string, number> = {};
    for (const [k, kind] of Object.entries(kinds)) {
      const index = this.list.length;
      assert.ok(index < MAX_FIGURES, 'more figures than the value ranges keep apart');
      this.list.push({ path: prefix + k, kind, index });
      out[k] = this.value(index);
    }
    return out as Record<keyof M, number>;
  }
}

// The rest of each snapshot: what is not a number. No digits in the strings, so a value on screen
// can only have come from a figure. States are those in which every figure is drawn: a live player
// (its restarts), a silent relay (seconds since it answered).
type Rest<T> = Omit<T, NumericKey<T>>;

function watch(f: Figures): WatchSnapshot {
  const rest: Rest<WatchSnapshot> = { role: 'watch', stream: 'main', relay: 'relay.example', state: 'live', codec: 'mjpeg', player: 'live' };
  return { ...rest, ...f.of(WATCH_FIELDS) };
}

function share(f: Figures): ShareSnapshot {
  const rest: Omit<Rest<ShareSnapshot>, 'viewerReports'> = { role: 'share', stream: 'main', codec: 'mjpeg', source: 'test', relay: 'relay.example', relayState: 'not answering', ccState: 'queue', uplinkPaused: null };
  const report: Rest<ShareViewerRow> = { ssrc: 'cafebabe' };
  return { ...rest, ...f.of(SHARE_FIELDS), viewerReports: [{ ...report, ...f.of(SHARE_ROWS.viewerReports, 'viewerReports[0].') }] };
}

function relay(f: Figures): RelaySnapshot {
  const rest: Omit<Rest<RelaySnapshot>, 'perStream' | 'perViewer'> = { role: 'relay', address: 'relay.example', io: 'native' };
  const stream: Rest<RelayStreamRow> = { name: 'main', publisher: 'sharer.example', codec: 'h264', size: '1280x720', sound: true };
  const viewer: Rest<RelayViewerRow> = { stream: 'main', address: 'viewer.example', layerWhy: 'down' };
  return {
    ...rest,
    ...f.of(RELAY_FIELDS),
    perStream: [{ ...stream, ...f.of(RELAY_ROWS.perStream, 'perStream[0].') }],
    perViewer: [{ ...viewer, ...f.of(RELAY_ROWS.perViewer, 'perViewer[0].') }],
  };
}

const ROLES: Record<Snapshot['role'], (f: Figures) => Snapshot> = { watch, share, relay };

/** Builds a role's snapshot with values `value(i)`, and the list of its figures. */
function build(role: Snapshot['role'], value: (i: number) => number): { snapshot: Snapshot; figures: Figure[] } {
  const f = new Figures(value);
  return { snapshot: ROLES[role](f), figures: f.list };
}

/**
 * Whether `v` is on the screen as a number of its own: not part of a longer one ("1,602", "6.02",
 * "1602"), though "602.00%" or "602x603" count. Durations (a viewer's uptime) are "10m02s".
 */
function shows(text: string, v: number): boolean {
  return new RegExp(`(?<![\\d.,])${v}(?![\\d,]|\\.\\d*[1-9])`).test(text) || text.includes(fmtDuration(v));
}

const screen = (s: Snapshot, baseline?: Snapshot) =>
  render(s, new History(), { width: WIDTH, baseline: baseline && takeBaseline(baseline) }).join('\n');

for (const role of Object.keys(ROLES) as Snapshot['role'][]) {
  describe(`${role} dashboard`, () => {
    test('every figure of the snapshot is on the screen', () => {
      const { snapshot, figures } = build(role, A);
      const text = screen(snapshot);
      const missing = figures.filter((g) => !shows(text, A(g.index))).map((g) => `${g.path} (${A(g.index)})`);
      assert.deepEqual(missing, [], `not on the ${role} dashboard:\n${text}`);
    });

    test('r: counters count from the reset, gauges stay, ratios are recomputed', () => {
      const before = build(role, A).snapshot;
      const { snapshot: after, figures } = build(role, AD);
      const text = screen(after, before);
      const wrong: string[] = [];
      for (const g of figures) {
        const since = D(g.index);
        const total = AD(g.index);
        if (g.kind === 'counter' && !(shows(text, since) && !shows(text, total))) wrong.push(`counter ${g.path}: want ${since} since the reset, not ${total}`);
        if (g.kind === 'gauge' && !shows(text, total)) wrong.push(`gauge ${g.path}: want ${total} as it is`);
        if (g.kind === 'ratio' && shows(text, total)) wrong.push(`ratio ${g.path}: still ${total}, not recomputed since the reset`);
      }
      assert.deepEqual(wrong, [], `after r on the ${role} dashboard:\n${text}`);
      assert.match(text, /counters since reset/);
    });
  });
}

test('the checks above have something to check: each role has counters and gauges, rows included', () => {
  for (const role of Object.keys(ROLES) as Snapshot['role'][]) {
    const { figures } = build(role, A);
    assert.ok(figures.some((g) => g.kind === 'counter'), `${role} has counters`);
    assert.ok(figures.some((g) => g.kind === 'gauge'), `${role} has gauges`);
  }
  assert.ok(build('relay', A).figures.some((g) => g.path === 'perViewer[0].packetsOut' && g.kind === 'counter'));
  assert.ok(build('watch', A).figures.some((g) => g.path === 'lostOnWirePercent' && g.kind === 'ratio'));
});

/**
 * The layout of src/ (ARCHITECTURE.md): folders in the order data flows through them, and an
 * import only ever points down that order, never up and never in a circle.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CODEC_NAMES } from '../src/codecs/registry.ts';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/**
 * Each folder's layer: a file may import from its own folder or from a lower layer. `util`, `rtp`
 * and the root files (defaults.ts) are at the bottom; the pipeline follows capture → encode →
 * transport → relay → player; the dashboard reads every part's snapshot; apps wire it all.
 */
export const LAYERS: Record<string, number> = {
  '.': 0,
  util: 0,
  rtp: 1,
  codecs: 2,
  capture: 3,
  encode: 4,
  impair: 4,
  transport: 5,
  relay: 6,
  player: 7,
  dashboard: 8,
  apps: 9,
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/** Every relative import (static, type-only, dynamic) of a file, as absolute paths. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => path.resolve(path.dirname(file), m[1]));
}

const folderOf = (file: string) => path.relative(SRC, file).split(path.sep).slice(0, -1)[0] ?? '.';

test('every folder of src/ has a layer', () => {
  for (const f of sources(SRC)) assert.ok(folderOf(f) in LAYERS, `${path.relative(SRC, f)}: folder ${folderOf(f)} has no layer in test/layout.test.ts`);
});

test('imports point down the layers: no folder imports a later one', () => {
  const wrong: string[] = [];
  for (const f of sources(SRC)) {
    const from = folderOf(f);
    for (const target of imports(f)) {
      const to = folderOf(target);
      if (to !== from && !(LAYERS[to] < LAYERS[from])) wrong.push(`${path.relative(SRC, f)} → ${path.relative(SRC, target)}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no import cycle between files', () => {
  const graph = new Map(sources(SRC).map((f) => [f, imports(f)]));
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, trail: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(f)), f].map((x) => path.relative(SRC, x)).join(' → '));
      return;
    }
    state.set(f, 'open');
    for (const t of graph.get(f) ?? []) visit(t, [...trail, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  assert.deepEqual(cycles, []);
});

test('no file outside src/codecs names a codec: adding one is a folder and a registry line', () => {
  // A codec's name as a value ('h264') or a hint naming one (--codec h264), for every registered
  // codec; prose ("MJPEG stream: …") and the readers' own formats are not names of a codec choice.
  const names = CODEC_NAMES.join('|');
  const naming = new RegExp(`(['"\`])(${names})\\1|--codec (${names})\\b`, 'g');
  const named: string[] = [];
  for (const f of sources(SRC)) {
    if (folderOf(f) === 'codecs') continue;
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(naming)) named.push(`${path.relative(SRC, f)}: ${m[0]}`);
  }
  assert.deepEqual(named, []);
});

/**
 * `npm run bench [-- --quick] [-- --only NAME[,NAME]]`: runs the benchmark suite, each figure next
 * to a baseline measured in the same run, and writes bench/results.json and BENCHMARKS.md.
 * With --only, the other benchmarks' previous results are kept in results.json.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, killAllSync, stopAll, versionOf, type BenchContext, type BenchResult } from './lib.ts';
import { packetizerBench } from './packetizer.ts';
import { latencyBench } from './latency.ts';
import { fanoutBench } from './fanout.ts';
import { lossBench } from './loss.ts';
import { lateJoinBench } from './latejoin.ts';
import { fuzzBench } from './fuzz.ts';
import { glassBench } from './glass.ts';
import { recordingBench } from './recording.ts';
import { uplinkBench } from './uplink.ts';
import { narrowBench } from './narrow.ts';
import { stepBench } from './step.ts';
import { soundBench } from './sound.ts';
import { lipsyncBench } from './lipsync.ts';
import { rtspBench } from './rtsp.ts';
import { webrtcBench } from './webrtc.ts';
import { browsersBench } from './browsers.ts';

const BENCHES: Record<string, (ctx: BenchContext) => Promise<BenchResult>> = {
  packetizer: packetizerBench,
  latency: latencyBench,
  fanout: fanoutBench,
  loss: lossBench,
  latejoin: lateJoinBench,
  fuzz: fuzzBench,
  glass: glassBench,
  recording: recordingBench,
  uplink: uplinkBench,
  narrow: narrowBench,
  step: stepBench,
  sound: soundBench,
  lipsync: lipsyncBench,
  rtsp: rtspBench,
  webrtc: webrtcBench,
  browsers: browsersBench,
};

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const onlyIdx = argv.indexOf('--only');
/** --report: rewrite BENCHMARKS.md from bench/results.json, measuring nothing. */
const reportOnly = argv.includes('--report');
const only = reportOnly ? [] : onlyIdx >= 0 ? (argv[onlyIdx + 1] ?? '').split(',').filter(Boolean) : Object.keys(BENCHES);
for (const n of only) {
  if (!BENCHES[n]) {
    process.stderr.write(`bench: unknown benchmark ${JSON.stringify(n)}; one of ${Object.keys(BENCHES).join(', ')}\n`);
    process.exit(2);
  }
}

process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAllSync();
    process.exit(130);
  });
}

const RESULTS = path.join(ROOT, 'bench', 'results.json');
const MARKDOWN = path.join(ROOT, 'BENCHMARKS.md');

function machine() {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  return {
    cpu,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    ffmpeg: versionOf('ffmpeg'),
    gstreamer: versionOf('gst-launch-1.0', '--version'),
  };
}

const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const ctx: BenchContext = { quick, log };

let previous: { results?: Record<string, BenchResult>; secondsPerBench?: Record<string, number>; loadAverageBeforeAfter?: Record<string, [number, number]>; generated?: string } = {};
try {
  previous = JSON.parse(readFileSync(RESULTS, 'utf8'));
} catch {
  /* first run */
}
const keep = onlyIdx >= 0 || reportOnly;
const results: Record<string, BenchResult> = keep ? { ...(previous.results ?? {}) } : {};
const started = Date.now();
const timings: Record<string, number> = keep ? { ...(previous.secondsPerBench ?? {}) } : {};
/** Load average (1 min) before and after each benchmark: other work on the machine shows here. */
const load: Record<string, [number, number]> = keep ? { ...(previous.loadAverageBeforeAfter ?? {}) } : {};
/** When each benchmark's figures were measured (an --only run keeps the others' from before). */
const measuredAt: Record<string, string> = keep ? { ...((previous as { measuredAt?: Record<string, string> }).measuredAt ?? {}) } : {};
for (const name of only) {
  const t0 = Date.now();
  const load0 = os.loadavg()[0];
  log(`── ${name} ── (load average ${load0.toFixed(1)})`);
  try {
    results[name] = await BENCHES[name](ctx);
    if (results[name].skipped) log(`${name}: skipped: ${results[name].skipped}`);
  } catch (err) {
    const e = err as Error;
    log(`${name}: FAILED: ${e.stack ?? e.message}`);
    results[name] = { name, title: name, skipped: `failed: ${e.message}`, rows: [], markdown: '' };
  } finally {
    await stopAll();
  }
  timings[name] = Math.round((Date.now() - t0) / 1000);
  measuredAt[name] = `${new Date().toISOString()}, in \`npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}\``;
  load[name] = [Math.round(load0 * 10) / 10, Math.round(os.loadavg()[0] * 10) / 10];
  log(`${name}: ${timings[name]} s`);
}

const m = machine();
const doc = {
  generated: new Date().toISOString(),
  command: `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`,
  quick,
  machine: m,
  secondsPerBench: timings,
  loadAverageBeforeAfter: load,
  measuredAt,
  totalSeconds: Math.round((Date.now() - started) / 1000),
  results,
};
writeFileSync(RESULTS, JSON.stringify(doc, null, 2) + '\n');

const order = Object.keys(BENCHES).filter((n) => results[n]);
const md: string[] = [
  '# Benchmarks',
  '',
  '<!-- Generated by `npm run bench` (bench/run.ts) from bench/results.json; edit bench/, not this file. -->',
  '',
  'Every figure stands next to a baseline measured in the same run on the same machine, as a ratio,',
  'because these machines are noisy: compare the ratios, and the raw numbers only within one run.',
  '',
  '## Reproduce',
  '',
  '```sh',
  'apt-get install ffmpeg xvfb x11-xserver-utils xdotool gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good',
  'npm ci',
  'npm run bench                     # the whole suite, about 30 minutes on 2 cores',
  'npm run bench -- --quick          # shorter runs, fewer samples',
  `npm run bench -- --only fanout    # one benchmark (${Object.keys(BENCHES).join(', ')})`,
  '```',
  '',
  'A baseline whose tool is missing (GStreamer, Xvfb) is skipped and the reason printed. The run writes',
  'bench/results.json (every raw number) and this file; scratch files go to bench/out/ (not committed).',
  '',
  '## Machine',
  '',
  `- CPU: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM; ${m.kernel}`,
  `- Node ${m.node}; ${m.ffmpeg ?? 'no ffmpeg'}; ${m.gstreamer ?? 'no GStreamer'}`,
  `- Run: \`${doc.command}\` at ${doc.generated}, ${doc.totalSeconds} s` +
    (keep ? ' (this run measured only what it names; each section says when it was measured)' : ''),
  '',
  `- 1-minute load average before → after each benchmark (${m.cores} cores; other jobs shared the machine when it ` +
    `exceeds that): ${Object.entries(load).map(([k, [a, b]]) => `${k} ${a} → ${b ?? '?'}`).join(', ')}`,
  '',
  '## Targets',
  '',
  '| benchmark | target | met | measured |',
  '|---|---|---|---|',
];
for (const n of order) {
  for (const t of results[n].targets ?? []) {
    md.push(`| ${n} | ${t.target} | ${t.met === null ? 'n/a' : t.met ? 'yes' : '**no**'} | ${t.detail} |`);
  }
}
for (const n of order) {
  const r = results[n];
  md.push('', `## ${r.title}`, '');
  if (measuredAt[n]) md.push(`Measured ${measuredAt[n]}${timings[n] ? `; took ${timings[n]} s` : ''}.`, '');
  if (r.skipped) md.push(`Skipped: ${r.skipped}`, '');
  if (r.markdown) md.push(r.markdown);
}
writeFileSync(MARKDOWN, md.join('\n') + '\n');
log(`wrote ${path.relative(ROOT, RESULTS)} and ${path.relative(ROOT, MARKDOWN)} in ${doc.totalSeconds} s`);
process.exit(0);

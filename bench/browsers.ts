/**
 * Issue 17: how many browsers one relay core serves. One `udpcast relay --http` carries one
 * `udpcast share` (the test source, 1280x720, one layer at a fixed 2500 kbit/s: --no-adapt, see
 * below); simulated viewers in a
 * process of their own (bench/browsers-viewers.ts) join in steps, and the relay's CPU is read from
 * /proc over a window of each step:
 *   (u) UDP viewers (udpcast's own handshake): the baseline, same relay, same stream;
 *   (w) WebRTC viewers (werift peer connections through WHEP, ICE and DTLS; the relay encrypts
 *       SRTP for each of them).
 * Delivery: packets a viewer counted over the window, against what a UDP viewer counted in its
 * own step (the stream's rate). Target: ≥ 100 WebRTC viewers with the relay at ≤ 80% of a core.
 *
 * Why --no-adapt: with its congestion control on, the sharer went down to 813 kbit/s with 100
 * browsers on the relay (once, by hand), which makes the relay's load look lighter than the stream
 * asks. The likely cause: the relay times the sharer's packets when it reads them, and a frame's
 * fan-out to 100 browsers keeps it from reading for a while, which reads as a queue on the uplink.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { VIEWER_TIMEOUT_MS } from '../src/defaults.ts';
import { OUT, captureStderr, cpuSeconds, freePort, freeTcpPort, ratio, round, run, sleep, stop, table, udpcast, waitFor, type BenchContext, type BenchResult } from './lib.ts';
import type { ViewersCmd } from './browsers-viewers.ts';

const TARGET_VIEWERS = 100;
const TARGET_CPU_PCT = 80;
const STREAM = 'main';
/** Parts of a step's window whose median CPU is the step's figure. */
const WINDOWS = 5;

type Step = {
  kind: 'udp' | 'webrtc';
  viewers: number;
  /** Relay CPU over the window, % of one core. */
  cpuPct: number;
  /** The median of the relay's CPU over WINDOWS parts of the window. */
  cpuMedianPct: number;
  /** Of it, per viewer. */
  cpuPctPerViewer: number;
  /** Packets a viewer got per second (mean over the viewers). */
  ppsPerViewer: number;
  /** Against a UDP viewer's rate of the same stream. */
  deliveryPct: number | null;
  /** Viewers that did not connect. */
  failures: number;
  /** The simulated viewers' own CPU, % of one core (they share the machine's 2 cores with the relay and the sharer). */
  viewersCpuPct: number;
  /** Datagrams the kernel dropped for full receive buffers over the window, machine-wide (/proc/net/snmp RcvbufErrors). */
  kernelDrops: number;
};

/** The simulated viewers' process: one JSON command in, one JSON answer out. */
class Viewers {
  readonly child: ChildProcess;
  private readonly answers: string[] = [];
  private waiting?: (line: string) => void;

  constructor() {
    this.child = run(process.execPath, ['--import', 'tsx', 'bench/browsers-viewers.ts'], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        w(l);
      } else this.answers.push(l);
    });
  }

  async ask<T>(cmd: ViewersCmd, timeoutMs = 120_000): Promise<T> {
    this.child.stdin!.write(JSON.stringify(cmd) + '\n');
    const line = this.answers.shift() ?? (await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the viewers' process did not answer ${cmd.cmd} in ${timeoutMs} ms`)), timeoutMs);
      this.waiting = (l) => (clearTimeout(t), resolve(l));
    }));
    const a = JSON.parse(line) as T & { error?: string };
    if (a.error) throw new Error(a.error);
    return a;
  }

  async close(): Promise<void> {
    await this.ask({ cmd: 'close' }, 20_000).catch(() => undefined);
    await stop(this.child, 2000, 'SIGKILL');
  }
}

/** Viewers the relay's latest --stats-json line counts. */
function relayViewers(file: string): number | undefined {
  const last = readFileSync(file, 'utf8').trim().split('\n').at(-1);
  try {
    return last ? (JSON.parse(last) as { viewers: number }).viewers : undefined;
  } catch {
    return undefined;
  }
}

/** Machine-wide UDP datagrams dropped for a full receive buffer (/proc/net/snmp, Udp: RcvbufErrors). */
function rcvbufErrors(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0].split(/\s+/);
  return Number(lines[1].split(/\s+/)[names.indexOf('RcvbufErrors')]);
}

export async function browsersBench(ctx: BenchContext): Promise<BenchResult> {
  const counts = ctx.quick ? [25, 100] : [25, 50, 100, 150];
  const windowMs = ctx.quick ? 5000 : 15_000;
  const port = await freePort();
  const httpPort = await freeTcpPort();
  const stats = path.join(OUT, 'browsers-relay.ndjson');
  writeFileSync(stats, '');
  const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', '0', '--http', String(httpPort), '--no-dashboard', '--stats-json', stats]);
  const relayErr = captureStderr(relay);
  const share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '1280x720', '--layers', '1', '--bitrate', '2500k', '--no-adapt', '--duration', '3600', '--no-dashboard']);
  const shareErr = captureStderr(share);
  const steps: Step[] = [];
  let streamPps: number | null = null;
  try {
    await waitFor('the relay and its sharer', () => /publisher/.test(relayErr()), 20_000, 100).catch((err: Error) => {
      throw new Error(`${err.message}\n${relayErr()}\n${shareErr()}`);
    });
    await sleep(2000);
    for (const kind of ['udp', 'webrtc'] as const) {
      const viewers = new Viewers();
      let have = 0;
      let failures = 0;
      try {
        for (const n of counts) {
          if (kind === 'udp') await viewers.ask({ cmd: 'udp', count: n - have, port, stream: STREAM });
          else failures += (await viewers.ask<{ failures: string[] }>({ cmd: 'webrtc', count: n - have, url: `http://127.0.0.1:${httpPort}/whep/${STREAM}` })).failures.length;
          have = n;
          await sleep(3000); // joins done, catch-ups sent
          const c0 = await viewers.ask<{ packets: number }>({ cmd: 'count' });
          const cpu0 = cpuSeconds(relay.pid!);
          const vcpu0 = cpuSeconds(viewers.child.pid!);
          const drops0 = rcvbufErrors();
          const t0 = performance.now();
          // The relay's CPU over the whole window is the step's figure (garbage collection and the
          // peer connections' timers are the browsers' cost too); the median of WINDOWS parts of
          // it is shown beside it, as a check on a moment when something else had the machine.
          const parts: number[] = [];
          let at = t0;
          let cpu = cpu0!;
          for (let w = 0; w < WINDOWS; w++) {
            await sleep(windowMs / WINDOWS);
            const now = performance.now();
            const c = cpuSeconds(relay.pid!)!;
            parts.push((100 * (c - cpu)) / ((now - at) / 1000));
            at = now;
            cpu = c;
          }
          const cpuPct = (100 * (cpu - cpu0!)) / ((at - t0) / 1000);
          const c1 = await viewers.ask<{ packets: number }>({ cmd: 'count' });
          const vcpu1 = cpuSeconds(viewers.child.pid!);
          const drops1 = rcvbufErrors();
          const secs = (performance.now() - t0) / 1000;
          const connected = n - failures;
          const pps = (c1.packets - c0.packets) / secs / Math.max(1, connected);
          if (kind === 'udp') streamPps ??= pps;
          const medianPct = parts.sort((a, b) => a - b)[Math.floor(WINDOWS / 2)];
          const s: Step = {
            kind,
            viewers: connected,
            cpuPct: round(cpuPct, 1)!,
            cpuMedianPct: round(medianPct, 1)!,
            cpuPctPerViewer: round(cpuPct / Math.max(1, connected), 3)!,
            ppsPerViewer: round(pps, 1)!,
            deliveryPct: streamPps ? round((100 * pps) / streamPps, 1) : null,
            failures,
            viewersCpuPct: round((100 * (vcpu1! - vcpu0!)) / secs, 1)!,
            kernelDrops: drops1 - drops0,
          };
          steps.push(s);
          ctx.log(`browsers ${kind} ${connected} viewers: relay CPU ${s.cpuPct}% (${s.cpuPctPerViewer}%/viewer), ${s.ppsPerViewer} pkt/s each, delivery ${s.deliveryPct}%, viewers' CPU ${s.viewersCpuPct}%, kernel drops ${s.kernelDrops}${failures ? `, ${failures} did not connect` : ''}`);
          if (cpuPct > 95) break; // the relay is out of core: a larger step says nothing more
        }
      } finally {
        await viewers.close();
      }
      // The relay sends to viewers that left until it drops them (VIEWER_TIMEOUT_MS without a
      // word): the next kind is measured once it has none.
      await waitFor('the relay to drop the viewers that left', () => relayViewers(stats) === 0, VIEWER_TIMEOUT_MS + 10_000, 500);
    }
  } finally {
    await stop(share);
    await stop(relay);
  }
  const udp = steps.filter((s) => s.kind === 'udp');
  const web = steps.filter((s) => s.kind === 'webrtc');
  const fits = web.filter((s) => s.cpuPct <= TARGET_CPU_PCT && (s.deliveryPct ?? 0) >= 99);
  const best = fits.at(-1);
  // Per viewer: the relay's whole CPU over the viewers of the largest step that delivered
  // everything (a saturated step says only that it was too many); its fixed cost included, so the
  // figure leans to the safe side. The UDP viewers' the same way.
  const perViewerOf = (xs: Step[]): number | undefined => xs.filter((s) => (s.deliveryPct ?? 0) >= 99).at(-1)?.cpuPctPerViewer;
  const perViewer = perViewerOf(web);
  const atTarget = perViewer ? Math.floor(TARGET_CPU_PCT / perViewer) : null;
  const udpPer = perViewerOf(udp);
  const met = web.some((s) => s.viewers >= TARGET_VIEWERS && s.cpuPct <= TARGET_CPU_PCT && (s.deliveryPct ?? 0) >= 99);
  const markdown = [
    table(
      ['viewers', 'kind', 'relay CPU (% of a core)', 'median of 5 parts', 'per viewer', 'pkt/s each', 'delivery', 'not connected', "viewers' CPU", 'kernel drops'],
      steps.map((s) => [s.viewers, s.kind === 'udp' ? 'UDP (udpcast watch handshake)' : 'WebRTC (werift, SRTP)', s.cpuPct, s.cpuMedianPct, s.cpuPctPerViewer, s.ppsPerViewer, s.deliveryPct === null ? '-' : `${s.deliveryPct}%`, s.failures, `${s.viewersCpuPct}%`, s.kernelDrops]),
    ),
    '',
    `One \`udpcast share --no-adapt\` (test source, 1280x720, one layer at 2500 kbit/s, ${streamPps === null ? '?' : Math.round(streamPps)} packets/s) through one \`udpcast relay --http\`, ` +
      `viewers added in steps in a process of their own; the relay's CPU read from /proc over ${windowMs / 1000} s of each step. ` +
      `A WebRTC viewer costs the relay ${perViewer ?? '?'}% of a core against ${udpPer ?? '?'}% for a UDP viewer (${ratio(perViewer, udpPer) ?? '?'}x; ` +
      `the relay's CPU over the viewers of the largest step that delivered everything, its fixed cost included): about ${atTarget ?? '?'} WebRTC viewers at ${TARGET_CPU_PCT}% of a core. ` +
      `The simulated browsers send what Chromium sends back (a receiver report a second; transport-wide feedback, about 15 reports a second, only where the relay asks for it: a stream with layers, not this one) and count what arrives without decrypting it; ` +
      `the SRTP profile is Chromium's (AES-CM with HMAC-SHA1-80; a browser that takes AES-GCM is not measured here). On loopback the sender's system call also carries the receiving side's work.`,
  ].join('\n');
  return {
    name: 'browsers',
    title: 'Browsers per relay core (WebRTC viewers)',
    rows: steps,
    markdown,
    targets: [
      {
        target: `≥ ${TARGET_VIEWERS} WebRTC viewers at 2.5 Mbit/s with the relay ≤ ${TARGET_CPU_PCT}% of a core`,
        met,
        detail: best ? `${best.viewers} viewers at ${best.cpuPct}% (${best.cpuPctPerViewer}%/viewer, ${ratio(perViewer, udpPer)}x a UDP viewer); about ${atTarget} at ${TARGET_CPU_PCT}%` : `no step fit: ${web.map((s) => `${s.viewers} at ${s.cpuPct}%`).join(', ')}`,
      },
    ],
  };
}

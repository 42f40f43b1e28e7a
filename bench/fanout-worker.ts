/**
 * A thread of the fan-out load generator: simulated viewers, each with its own UDP socket on
 * 127.0.0.1, doing the viewer's handshake (RR + SUBSCRIBE every second, echoing a CHALLENGE cookie
 * at once, as src/player/viewer.ts does) and counting the media that reaches them. Receiving runs
 * on its own thread so the publisher's pacing in the main thread is not starved by it.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { ControlType, controlApp, parseControl } from '../src/transport/control.ts';
import { isRtcp, parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';

export interface WorkerInit {
  count: number;
  stream: string;
  ssrcBase: number;
  measureDelay: boolean;
  packetBytes: number;
  marker: number;
  stampOffset: number;
}
export type WorkerCmd =
  | { cmd: 'subscribe'; port: number }
  | { cmd: 'reset' }
  | { cmd: 'count' }
  | { cmd: 'pause' }
  | { cmd: 'resume' }
  | { cmd: 'close' };

/** Viewer socket receive buffer (the kernel caps it at net.core.rmem_max). */
const RCVBUF = 1 << 20;
/** Delay samples kept per step; reservoir sampling beyond that. */
const DELAY_SAMPLES = 100_000;

const init = workerData as WorkerInit;

/**
 * node's dgram has no pause(); its socket keeps the libuv handle under an internal symbol, and the
 * handle's recvStop()/recvStart() are what close() and bind() use. Benchmark-only reach-in.
 */
function handleOf(sock: dgram.Socket): { recvStop?: () => number; recvStart?: () => number } | undefined {
  const sym = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  return sym ? (sock as unknown as Record<symbol, { handle?: { recvStop?: () => number; recvStart?: () => number } }>)[sym]?.handle : undefined;
}
const port = parentPort!;
interface V {
  sock: dgram.Socket;
  ssrc: number;
  cookie?: Buffer;
  acked: boolean;
}
const viewers: V[] = [];
let relayPort = 0;
let received = 0;
const delays = new Float64Array(DELAY_SAMPLES);
let delayCount = 0;
let keepalive: NodeJS.Timeout | undefined;

function subscribe(v: V): void {
  const msg = serializeRtcp([
    { type: 'rr', ssrc: v.ssrc, reports: [] },
    controlApp({ kind: ControlType.Subscribe, stream: init.stream, cookie: v.cookie }, v.ssrc),
  ]);
  v.sock.send(msg, relayPort, '127.0.0.1');
}

function onDatagram(v: V, msg: Buffer): void {
  if (msg.length === init.packetBytes && msg[12] === init.marker) {
    received++;
    if (init.measureDelay) {
      const d = performance.now() + performance.timeOrigin - msg.readDoubleLE(init.stampOffset);
      if (delayCount < DELAY_SAMPLES) delays[delayCount] = d;
      else {
        const j = Math.floor(Math.random() * (delayCount + 1));
        if (j < DELAY_SAMPLES) delays[j] = d;
      }
      delayCount++;
    }
    return;
  }
  if (!isRtcp(msg)) return;
  try {
    for (const p of parseRtcp(msg)) {
      if (p.type !== 'app') continue;
      const c = parseControl(p);
      if (!c || c.stream !== init.stream) continue;
      if (c.kind === ControlType.Ack) v.acked = true;
      // CHALLENGE: the relay wants proof we receive here; echo its cookie at once.
      else if (c.kind === ControlType.Challenge && c.cookie) {
        v.cookie = c.cookie;
        subscribe(v);
      }
    }
  } catch {
    /* malformed: dropped, as the viewer would */
  }
}

for (let i = 0; i < init.count; i++) {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  try {
    sock.setRecvBufferSize(RCVBUF);
  } catch {
    /* capped */
  }
  const v: V = { sock, ssrc: (init.ssrcBase + i) >>> 0, acked: false };
  sock.on('message', (msg) => onDatagram(v, msg));
  viewers.push(v);
}
port.postMessage({ ports: viewers.map((v) => v.sock.address().port) });

port.on('message', async (m: WorkerCmd) => {
  switch (m.cmd) {
    case 'subscribe':
      relayPort = m.port;
      for (const v of viewers) subscribe(v);
      keepalive = setInterval(() => viewers.forEach(subscribe), 1000);
      port.postMessage({ subscribed: true });
      break;
    case 'reset':
      received = 0;
      delayCount = 0;
      port.postMessage({ reset: true });
      break;
    case 'count':
      port.postMessage({
        received,
        acked: viewers.filter((v) => v.acked).length,
        delays: init.measureDelay ? Array.from(delays.subarray(0, Math.min(delayCount, DELAY_SAMPLES))) : [],
      });
      break;
    case 'pause':
      // Stop reading: what arrives waits in the kernel queue (or is dropped there, and counted in
      // /proc/net/udp), so reading costs this core nothing while the forwarder is measured.
      for (const v of viewers) handleOf(v.sock)?.recvStop?.();
      port.postMessage({ paused: true });
      break;
    case 'resume':
      for (const v of viewers) handleOf(v.sock)?.recvStart?.();
      port.postMessage({ resumed: true });
      break;
    case 'close':
      clearInterval(keepalive);
      await Promise.all(viewers.map((v) => new Promise<void>((r) => v.sock.close(() => r()))));
      port.postMessage({ closed: true });
      port.close();
      break;
  }
});

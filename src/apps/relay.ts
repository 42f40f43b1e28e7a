/** `udpcast relay`: a standalone relay that fans streams out to their viewers. */
import { RelayServer, type RelayServerOptions } from '../relay/io/server.ts';
import { loadNative } from '../relay/io/native.ts';
import { RtspServer } from '../relay/rtsp/server.ts';
import { RtspPusher } from '../relay/rtsp/push.ts';
import { HttpServer, type HttpAnswer } from '../relay/http/server.ts';
import { indexPage } from '../relay/http/pages.ts';
import { BrowserViewers } from '../relay/webrtc/viewers.ts';
import { whepRoutes } from '../relay/webrtc/whep.ts';
import { pictureSummary } from '../relay/picture.ts';
import { RelayMetrics } from '../dashboard/metrics.ts';
import { fmt } from '../relay/core.ts';
import { sentTo, type StreamState } from '../relay/routing.ts';
import { UsageError } from '../util/errors.ts';
import { deriveMasterKey, deriveWatchKey } from '../transport/secure.ts';
import type { RelayOptions } from './options.ts';
import type { RelaySnapshot } from '../dashboard/snapshots.ts';
import { VIDEO_CLOCK_RATE } from '../defaults.ts';
import { RateMeter, round, startReporter } from './report.ts';

export interface RelayHandle {
  server: RelayServer;
  /** The RTSP server, unless --rtsp-port 0. */
  rtsp?: RtspServer;
  /** One per --push STREAM=URL. */
  pushers: RtspPusher[];
  /** The HTTP server, unless --http 0. */
  http?: HttpServer;
  /** Its browser viewers (WHEP), with the HTTP server. */
  browsers?: BrowserViewers;
  done: Promise<number>;
  stop(code?: number): void;
}

/** Starts a relay server, turning a port or address that cannot be bound into a person's error. */
export async function listen(opts: RelayServerOptions): Promise<RelayServer> {
  try {
    return await RelayServer.start(opts);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new UsageError(`--port ${opts.port} is in use on ${opts.host}: pick another port`);
    if (e.code === 'EADDRNOTAVAIL') throw new UsageError(`--host ${opts.host} is not an address of this machine`);
    throw err;
  }
}

/** How a person reaches a server bound to `host`: HOST for the wildcard addresses, which name none. */
function shownAt(host: string, port: number): string {
  return host === '0.0.0.0' || host === '::' ? `HOST:${port}` : fmt({ address: host, port });
}

/**
 * A server beside the relay on a TCP port (RTSP, HTTP): a taken default port leaves it off with a
 * line (the relay's own job is UDP); a taken port the person gave (`given`) is their error.
 */
async function startBeside<T>(
  start: () => Promise<T>,
  o: { option: string; what: string; port: number; given: boolean; host: string; whoElse?: string },
  log: (line: string) => void,
): Promise<T | undefined> {
  try {
    return await start();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (o.given) throw new UsageError(`${o.option} ${o.port} is in use on ${o.host}: pick another port, or 0 for no ${o.what}`);
    log(`${o.what.toLowerCase()}: TCP ${o.port} is taken${o.whoElse ? ` (${o.whoElse})` : ''}: no ${o.what}; pass ${o.option} N for another port`);
    return undefined;
  }
}

/**
 * The RTSP server beside a relay (the standalone one, or share's embedded one), unless `rtspPort`
 * is 0. A taken default port leaves it off with a line (the relay's own job is UDP); a taken port
 * the person gave is their error. `log` says the address players open.
 */
export async function startRtsp(
  server: RelayServer,
  o: { host: string; rtspPort: number; rtspPortGiven: boolean; watchKey?: string; key?: string },
  log: (line: string) => void,
): Promise<RtspServer | undefined> {
  if (o.rtspPort === 0) return undefined;
  let rtsp: RtspServer | undefined;
  try {
    const start = () =>
      RtspServer.start({
        host: o.host, port: o.rtspPort, core: server.core, send: (out) => server.sendFromTransport(out), pump: () => server.sendFromTransport([]),
        watchPassword: o.watchKey, publishPassword: o.key, log,
      });
    rtsp = await startBeside(start, { option: '--rtsp-port', what: 'RTSP', port: o.rtspPort, given: o.rtspPortGiven, host: o.host, whoElse: 'another relay or RTSP server?' }, log);
  } catch (err) {
    await server.close();
    throw err;
  }
  if (!rtsp) return undefined;
  const shown = shownAt(o.host, rtsp.port);
  log(
    o.watchKey !== undefined
      ? `rtsp: every stream is rtsp://viewer:WATCH_KEY@${shown}/STREAM (the --watch-key as the password, any user name)`
      : `rtsp: every stream is rtsp://${shown}/STREAM (ffplay, VLC, GStreamer; UDP or TCP)`,
  );
  return rtsp;
}

/**
 * The HTTP server beside a relay, unless `httpPort` is 0, and the browser viewers it serves
 * (WHEP, the pages): a taken default port leaves both off with a line, a taken port the person gave
 * is their error (as for RTSP). `routes` are the caller's (/streams.json, /metrics). `log` says
 * where to look.
 */
async function startHttp(
  server: RelayServer,
  o: { host: string; httpPort: number; httpPortGiven: boolean; watchKey?: string; shownHost?: string },
  routes: Record<string, () => HttpAnswer | Promise<HttpAnswer>>,
  log: (line: string) => void,
): Promise<{ http?: HttpServer; browsers?: BrowserViewers }> {
  if (o.httpPort === 0) return {};
  // Browsers' packets go through the native helper when the relay's own do (not with --no-native).
  const native = server.io.path === 'native' ? loadNative().native : undefined;
  const browsers = new BrowserViewers({ core: server.core, host: o.host, send: (out) => server.sendFromTransport(out), pump: () => server.sendFromTransport([]), log, native });
  let http: HttpServer | undefined;
  try {
    // The list of streams: a person with a browser is about to pick one (werift starts loading).
    const index = () => {
      browsers.warm();
      return { type: 'text/html; charset=utf-8', body: indexPage() };
    };
    const start = () => HttpServer.start({ host: o.host, port: o.httpPort, routes: { '/': index, ...routes }, prefixed: whepRoutes(browsers), token: o.watchKey, log });
    http = await startBeside(start, { option: '--http', what: 'HTTP', port: o.httpPort, given: o.httpPortGiven, host: o.host }, log);
  } finally {
    if (!http) browsers.closeAll();
  }
  if (!http) return {};
  // --http given by name: browsers are expected, so werift loads now, before any viewer joins,
  // rather than at the first page (0.3-1 s of loading, much of it on the relay's one thread, while
  // the page waits for its answer).
  if (o.httpPortGiven) browsers.warm();
  const shown = o.shownHost !== undefined ? fmt({ address: o.shownHost, port: http.port }) : shownAt(o.host, http.port);
  const token = o.watchKey !== undefined ? '?token=WATCH_KEY' : '';
  log(`http: open http://${shown}/${token} in a browser (each stream plays at /watch/STREAM${token}; WHEP at /whep/STREAM)`);
  const metrics = '/metrics' in routes ? ', /metrics for Prometheus' : '';
  log(`http: http://${shown}/streams.json lists the streams${metrics}${o.watchKey !== undefined ? ' (the --watch-key as a Bearer token or ?token=)' : ''}; udpcast list ${shown}`);
  return { http, browsers };
}

/** /streams.json's answer for these rows (streamRows). */
function streamsJson(rows: ReturnType<typeof streamRows>): HttpAnswer {
  return { type: 'application/json', body: JSON.stringify({ streams: rows }, null, 1) + '\n' };
}

/** The rows of /streams.json and --stats-json's perStream: the published `streams`, each with its rate meter in `rates`. */
export function streamRows(streams: readonly StreamState[], now: number, rates: Map<string, RateMeter>) {
  return streams.map((s) => {
    let meter = rates.get(s.name);
    if (!meter) rates.set(s.name, (meter = new RateMeter()));
    return {
      name: s.name,
      publisher: fmt(s.publisher!.endpoint),
      ...pictureSummary(s),
      sound: s.sound.ssrc !== undefined,
      bitrateInKbps: round(meter.sample(s.bytesIn * 8, now) / 1000) ?? 0,
      packetsIn: s.packetsIn,
      packetsOut: s.packetsOut,
      viewers: s.viewers.size,
      dropped: s.dropped,
    };
  });
}

/**
 * share's embedded relay on the web (--http): the pages, WHEP and /streams.json (the figures of
 * /metrics are a standalone relay's; share writes its own with --stats-json).
 */
export function startEmbeddedHttp(
  server: RelayServer,
  o: { host: string; httpPort: number; httpPortGiven: boolean; watchKey?: string; shownHost?: string },
  log: (line: string) => void,
): Promise<{ http?: HttpServer; browsers?: BrowserViewers }> {
  const rates = new Map<string, RateMeter>();
  const rows = () => streamRows([...server.core.streams.values()].filter((s) => s.publisher), Date.now(), rates);
  return startHttp(server, o, { '/streams.json': () => streamsJson(rows()) }, log);
}

/** A --push of a stream `server` carries (relay --push, or share's embedded relay): a viewer of its core. */
export function startPush(server: RelayServer, stream: string, url: string, log: (line: string) => void): RtspPusher {
  return new RtspPusher({ core: server.core, stream, url, pump: () => server.sendFromTransport([]), log });
}

export async function startRelay(o: RelayOptions, log: (line: string) => void): Promise<RelayHandle> {
  const server = await listen({
    host: o.host,
    port: o.port,
    log,
    key: o.key !== undefined ? deriveMasterKey(o.key) : undefined,
    watchKey: o.watchKey !== undefined ? deriveWatchKey(deriveMasterKey(o.watchKey)) : undefined,
    native: o.native,
  });
  const locks = [o.key !== undefined && 'sharers need --key', o.watchKey !== undefined && 'viewers need --watch-key'].filter(Boolean);
  log(`relay listening on ${fmt(server.address)}${locks.length ? ` (${locks.join(', ')})` : ' (open: anyone may publish and watch)'}`);
  const rtsp = await startRtsp(server, o, log);
  const pushers = (o.push ?? []).map(({ stream, url }) => startPush(server, stream, url, log));
  const io = server.io;
  log(
    io.path === 'native'
      ? `datagrams: native helper, ${io.batchReceive ? 'recvmmsg and ' : ''}sendmmsg, a batch per system call`
      : `datagrams: node:dgram, one system call each (${io.why})`,
  );
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const inRate = new RateMeter();
  const outRate = new RateMeter();
  const streamRates = new Map<string, RateMeter>();
  // The newest snapshot: what --stats-json wrote last, and what the HTTP server answers from.
  let latest: RelaySnapshot | undefined;
  const metrics = new RelayMetrics(() => latest);
  const { http, browsers } = await startHttp(server, o, {
    '/streams.json': () => streamsJson((latest ??= snapshot()).perStream),
    '/metrics': async () => {
      latest ??= snapshot();
      return { type: metrics.contentType, body: await metrics.text() };
    },
  }, log);
  const reporter = startReporter({
    statsJson: o.statsJson,
    dashboard: o.dashboard && { onQuit: () => stop(0) },
    snapshot: (): RelaySnapshot => (latest = snapshot()),
    summary: (s) =>
      `relay: ${s.streams} stream(s)${s.awaitedStreams ? ` (+${s.awaitedStreams} awaited, no sharer yet)` : ''}, ${s.viewers} viewer(s), ` +
      `in ${s.bitrateInKbps} kbit/s, out ${s.bitrateOutKbps} kbit/s, dropped ${s.dropped}`,
  });
  function snapshot(): RelaySnapshot {
      const now = Date.now();
      const core = server.core;
      const c = core.counters;
      const all = [...core.streams.values()];
      // A name only viewers asked for is not a stream: its viewers are in perViewer, waiting.
      const streams = all.filter((s) => s.publisher);
      return {
        role: 'relay',
        address: fmt(server.address),
        streams: streams.length,
        awaitedStreams: all.filter((s) => !s.publisher && s.viewers.size > 0).length,
        viewers: core.viewers,
        bitrateInKbps: round(inRate.sample(c.bytesIn * 8, now) / 1000) ?? 0,
        bitrateOutKbps: round(outRate.sample(c.bytesOut * 8, now) / 1000) ?? 0,
        ...c,
        dropped: c.malformed + c.unknownSource + c.oversize + c.hijackAttempts + c.overLimit + c.rateLimited,
        io: server.io.path,
        ...(rtsp ? { rtsp: { port: rtsp.port, sessionsNow: rtsp.sessionCount, ...rtsp.counters } } : {}),
        ...(pushers.length ? { push: pushers.map((p) => p.status) } : {}),
        ...(browsers ? { webrtc: { sessionsNow: browsers.size, ...browsers.counters } } : {}),
        handedToDgram: server.io.handedToDgram,
        perStream: streamRows(streams, now, streamRates),
        perViewer: all.flatMap((s) =>
          [...s.viewers.values()].map((v) => ({
            stream: s.name,
            address: fmt(v.endpoint),
            uptimeS: Math.round((now - v.since) / 1000),
            lossPercent: v.lastReport ? round((v.lastReport.fractionLost / 256) * 100, 2) : null,
            jitterMs: v.lastReport ? round((v.lastReport.jitter / VIDEO_CLOCK_RATE) * 1000, 2) : null,
            rttMs: round(v.rttMs),
            packetsOut: sentTo(v),
            sendErrors: v.sendErrors,
            retransmissions: v.retransmissions,
            // Quality layers: the one it gets, what its path takes by its own feedback, and why it last moved.
            layer: s.lanes.length > 1 ? v.lane.index : null,
            estimateKbps: round(v.choice?.knownKbps(now)) ?? null,
            layerWhy: v.choice?.why ?? null,
          })),
        ),
      };
  }
  const timer = o.duration ? setTimeout(() => stop(0), o.duration * 1000) : undefined;
  let stopping = false;
  function stop(code = 0): void {
    if (stopping) return;
    stopping = true;
    clearTimeout(timer);
    reporter.stop(code === 0);
    // The pushes first: their TEARDOWNs go out while the relay still runs.
    Promise.all(pushers.map((p) => p.close()))
      .then(() => {
        browsers?.closeAll();
        return Promise.all([server.close(), rtsp?.close(), http?.close()]);
      })
      .then(() => finish(code));
  }
  return { server, rtsp, pushers, http, browsers, done, stop };
}

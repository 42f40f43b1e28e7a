/** `udpcast relay`: a standalone relay that fans streams out to their viewers. */
import { RelayServer } from '../relay/server.ts';
import { fmt } from '../relay/core.ts';
import { UsageError } from '../util/errors.ts';
import type { RelayOptions } from './options.ts';
import { RateMeter, round, startReporter } from './report.ts';

export interface RelayHandle {
  server: RelayServer;
  done: Promise<number>;
  stop(code?: number): void;
}

export async function startRelay(o: RelayOptions, log: (line: string) => void): Promise<RelayHandle> {
  let server: RelayServer;
  try {
    server = await RelayServer.start({ host: o.host, port: o.port, log });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new UsageError(`--port ${o.port} is in use on ${o.host}: pick another port`);
    if (e.code === 'EADDRNOTAVAIL') throw new UsageError(`--host ${o.host} is not an address of this machine`);
    throw err;
  }
  log(`relay listening on ${fmt(server.address)}`);
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const inRate = new RateMeter();
  const outRate = new RateMeter();
  const reporter = startReporter({
    statsJson: o.statsJson,
    summaries: !o.dashboard || !process.stderr.isTTY,
    snapshot: () => {
      const now = Date.now();
      const c = server.core.counters;
      return {
        streams: server.core.streams.size,
        viewers: server.core.viewers,
        ...c,
        bitrateInKbps: round(inRate.sample(c.bytesIn * 8, now) / 1000),
        bitrateOutKbps: round(outRate.sample(c.bytesOut * 8, now) / 1000),
        perStream: [...server.core.streams.values()].map((s) => ({
          name: s.name,
          publisher: s.publisher ? fmt(s.publisher.endpoint) : null,
          viewers: s.viewers.size,
          packetsIn: s.packetsIn,
          packetsOut: s.packetsOut,
        })),
      };
    },
    summary: (s) =>
      `relay: ${s.streams} stream(s), ${s.viewers} viewer(s), in ${s.bitrateInKbps} kbit/s, out ${s.bitrateOutKbps} kbit/s, ` +
      `dropped ${Number(s.malformed) + Number(s.unknownSource) + Number(s.oversize)}`,
  });
  const timer = o.duration ? setTimeout(() => stop(0), o.duration * 1000) : undefined;
  let stopping = false;
  function stop(code = 0): void {
    if (stopping) return;
    stopping = true;
    clearTimeout(timer);
    reporter.stop(code === 0);
    server.close().then(() => finish(code));
  }
  return { server, done, stop };
}

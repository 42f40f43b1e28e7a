/**
 * `udpcast list HOST[:PORT]`, or a URL the relay prints (`udpcast list http://HOST:PORT/?token=KEY`):
 * the streams a relay carries now, from its HTTP server's /streams.json (relay --http, default
 * 8080), as a table on stdout.
 */
import http from 'node:http';
import { HTTP_PORT_DEFAULT } from '../defaults.ts';
import type { RelayStreamRow } from '../dashboard/snapshots.ts';
import { UsageError } from '../util/errors.ts';
import { formatEndpoint } from '../util/net.ts';
import { parseHostPort, readSecret, urlHost, type TargetForm } from './options.ts';

/** How long the relay has to answer, and the most of an answer read. */
const LIST_TIMEOUT_MS = 5000;
const LIST_MAX_BYTES = 4 * 1024 * 1024;

/** GET /streams.json from HOST:PORT; its streams, or a person's one-line error. */
export async function fetchStreams(host: string, port: number, watchKey?: string, timeoutMs = LIST_TIMEOUT_MS): Promise<RelayStreamRow[]> {
  const at = formatEndpoint({ address: host, port });
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.get({ host, port, path: '/streams.json', timeout: timeoutMs, headers: watchKey !== undefined ? { Authorization: `Bearer ${watchKey}` } : {} }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        if (bytes > LIST_MAX_BYTES) req.destroy(new Error(`${at} sent more than ${LIST_MAX_BYTES} bytes: is it a udpcast relay's HTTP port?`));
        else chunks.push(d);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${at} in ${timeoutMs / 1000} s: is it a udpcast relay's HTTP port (--http, default ${HTTP_PORT_DEFAULT})?`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND' || err.code === 'EHOSTUNREACH'
        ? new (err.code === 'ENOTFOUND' ? UsageError : Error)(`no HTTP server at ${at} (${err.code}): is the relay running, with --http ${port}?`)
        : err));
  });
  if (status === 401) throw new UsageError(watchKey === undefined ? `${at} asks for the relay's --watch-key: give it with --watch-key or --watch-key-file` : `${at} refused our --watch-key`);
  if (status !== 200) throw new Error(`${at} answered HTTP ${status} to /streams.json: is it a udpcast relay?`);
  try {
    const parsed = JSON.parse(body) as { streams?: unknown };
    if (!Array.isArray(parsed.streams)) throw new Error('no streams');
    return parsed.streams as RelayStreamRow[];
  } catch {
    throw new Error(`${at} answered /streams.json with something that is not a udpcast relay's list`);
  }
}

/** The streams as a table: a header and one line each, columns padded. */
export function streamsTable(streams: readonly RelayStreamRow[]): string {
  const rows = [
    ['STREAM', 'CODEC', 'SIZE', 'SOUND', 'VIEWERS', 'KBIT/S', 'PUBLISHER'],
    ...streams.map((s) => [s.name, s.codec ?? '-', s.size ?? '-', s.sound ? 'opus' : '-', String(s.viewers), String(Math.round(s.bitrateInKbps)), s.publisher]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

/** list's target: the relay's HTTP server, as HOST[:PORT] or an http:// URL of it (any path). */
const LIST_TARGET: TargetForm = {
  scheme: 'http',
  instead: (u) => `list asks the relay's HTTP server: udpcast list http://${urlHost(u)}:${HTTP_PORT_DEFAULT}/ (or ${urlHost(u)}:${HTTP_PORT_DEFAULT})`,
};

/** The --watch-key from the URL's ?token= (as the relay prints it), unless --watch-key[-file] is given: the option wins. */
export async function listStreams(a: Record<string, unknown>): Promise<{ done: Promise<number>; stop(): void }> {
  const target = parseHostPort('target', String(a.target ?? ''), HTTP_PORT_DEFAULT, LIST_TARGET);
  const watchKey = readSecret('watch-key', a.watchKey, a.watchKeyFile) ?? target.url?.query.get('token') ?? undefined;
  const streams = await fetchStreams(target.host, target.port, watchKey);
  process.stdout.write(streams.length ? streamsTable(streams) : `no streams on ${formatEndpoint({ address: target.host, port: target.port })} now\n`);
  return { done: Promise.resolve(0), stop: () => {} };
}

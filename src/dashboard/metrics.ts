/**
 * The relay's figures in Prometheus text (the HTTP server's /metrics), through prom-client: every
 * figure of its snapshot with the kind snapshots.ts gives it (counter or gauge), the per-stream and
 * per-viewer rows as labelled series. Read from the newest snapshot, the one --stats-json writes, so
 * a scrape and a stats line agree.
 *
 *   udpcast_relay_<figure>[_total]                     the relay's own (datagrams, drops by cause...)
 *   udpcast_relay_rtsp_<figure>[_total], udpcast_relay_webrtc_<figure>[_total]   the servers beside it
 *   udpcast_relay_stream_<figure>[_total]{stream}      per stream
 *   udpcast_relay_viewer_<figure>[_total]{stream,address}   per viewer
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { RELAY_FIELDS, RELAY_ROWS, RELAY_SERVERS, type FieldKind, type RelaySnapshot } from './snapshots.ts';

/** `bitrateInKbps` → `bitrate_in_kbps`. */
export function snakeCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

type Rows = Record<string, unknown>[];

export class RelayMetrics {
  readonly registry = new Registry();

  constructor(latest: () => RelaySnapshot | undefined) {
    const figure = (name: string, help: string, kind: FieldKind, labelNames: string[], values: () => Array<{ labels: Record<string, string>; value: number }>) => {
      const full = kind === 'counter' ? `${name}_total` : name;
      if (kind === 'counter') {
        new Counter({
          name: full, help, labelNames, registers: [this.registry],
          collect() {
            // A counter of the relay's own: set to its total (prom-client counters only go up, so from 0).
            this.reset();
            for (const v of values()) this.inc(v.labels, v.value);
          },
        });
      } else {
        new Gauge({
          name: full, help, labelNames, registers: [this.registry],
          collect() {
            this.reset();
            for (const v of values()) this.set(v.labels, v.value);
          },
        });
      }
    };
    const numberOf = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    for (const [key, kind] of Object.entries(RELAY_FIELDS)) {
      figure(`udpcast_relay_${snakeCase(key)}`, `relay ${key} (--stats-json)`, kind, [], () => {
        const v = numberOf(latest()?.[key as keyof RelaySnapshot]);
        return v === undefined ? [] : [{ labels: {}, value: v }];
      });
    }
    for (const [server, fields] of Object.entries(RELAY_SERVERS)) {
      for (const [key, kind] of Object.entries(fields)) {
        figure(`udpcast_relay_${server}_${snakeCase(key)}`, `relay ${server}.${key} (--stats-json)`, kind, [], () => {
          const v = numberOf((latest()?.[server as keyof typeof RELAY_SERVERS] as Record<string, unknown> | undefined)?.[key]);
          return v === undefined ? [] : [{ labels: {}, value: v }];
        });
      }
    }
    const rows = (list: 'perStream' | 'perViewer', prefix: string, labels: (r: Record<string, unknown>) => Record<string, string>) => {
      for (const [key, kind] of Object.entries(RELAY_ROWS[list])) {
        figure(`udpcast_relay_${prefix}_${snakeCase(key)}`, `${list} ${key} (--stats-json)`, kind, Object.keys(labels({})), () =>
          ((latest()?.[list] ?? []) as unknown as Rows).flatMap((r) => {
            const v = numberOf(r[key]);
            return v === undefined ? [] : [{ labels: labels(r), value: v }];
          }),
        );
      }
    };
    rows('perStream', 'stream', (r) => ({ stream: String(r.name ?? '') }));
    rows('perViewer', 'viewer', (r) => ({ stream: String(r.stream ?? ''), address: String(r.address ?? '') }));
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

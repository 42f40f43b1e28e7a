/**
 * One options object per command, validated once at the edge. Every check names the option and the
 * valid range, so a person knows what to type instead.
 */
import type { AudioSource } from '../capture/audio.ts';
import type { AudioFrameMs } from '../defaults.ts';
import { outputFormat } from '../player/sinks.ts';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError } from '../util/errors.ts';
import { STREAM_NAME_RE } from '../transport/control.ts';
import { DEFAULT_PORT } from '../defaults.ts';
import type { CodecName } from '../codecs/registry.ts';
import { parseRegion, parseSourceOption, type Region } from '../capture/source.ts';
import { parsePushUrl, redactUrl } from '../relay/rtsp/push.ts';

import { decodeUrlPart, typedUrl, URL_DEFAULT_PORTS, type HostPort, type TypedUrl } from '../util/net.ts';

export interface Size {
  width: number;
  height: number;
}

/** Passphrases (never logged). */
export interface Secrets {
  /** --key / --key-file / UDPCAST_KEY: shared by sharer and relay; publishers sign with it. */
  key?: string;
  /** --encrypt / UDPCAST_ENCRYPT: shared by sharer and viewers only; the relay never sees pictures. */
  encrypt?: string;
  /** --watch-key / UDPCAST_WATCH_KEY: shared by relay and viewers; only they may subscribe. */
  watchKey?: string;
}

export interface CommonOptions {
  statsJson?: string;
  dashboard: boolean;
  duration?: number;
}

export interface ShareOptions extends CommonOptions, Pick<Secrets, 'key' | 'encrypt'> {
  relay?: HostPort;
  host: string;
  port: number;
  /** --rtsp-port of the embedded relay (RelayOptions.rtspPort); unused with --relay. */
  rtspPort: number;
  rtspPortGiven: boolean;
  /** --http of the embedded relay (RelayOptions.httpPort): its page for browsers; unused with --relay. */
  httpPort: number;
  httpPortGiven: boolean;
  source: string;
  /** --source-format: FFmpeg's `-f` for the input. */
  sourceFormat?: string;
  /** --source-option NAME=VALUE (repeatable): FFmpeg input options, in order. */
  sourceOptions?: [string, string][];
  /** --loop: repeat a file source. */
  loop?: boolean;
  display?: string;
  region?: Region;
  codec: CodecName;
  encoder?: string;
  size?: Size;
  /** Frames per second; fractions allowed (29.97). */
  fps: number;
  bitrateKbps: number;
  gop: number;
  /** A quality-driven codec's fixed quality (MJPEG's -q:v); undefined with --bitrate (the quality follows it) or for other codecs. */
  quality?: number;
  stream: string;
  ffmpeg?: string;
  /** --fec PCT: parity overhead; undefined: no FEC. */
  fec?: { groupSize: number; mode: 'row' | 'column' | '2d'; depth?: number };
  /** --adapt (default): congestion control fits the bitrate to the path; --no-adapt: a fixed --bitrate. */
  adapt: boolean;
  /** --layers: quality layers from one capture (1-3); undefined: auto, chosen when the picture's size is known. */
  layers?: number;
  /** --audio: what sound to send with the picture (capture/audio.ts); undefined: none. */
  audio?: AudioSource;
  /** --audio-red: earlier Opus packets repeated in each sound packet (RFC 2198); 0: plain Opus. */
  audioRedundancy: number;
  /** --audio-dtx (default) / --no-audio-dtx: silence not sent (codecs/opus/dtx.ts). */
  audioDtx: boolean;
  /** --audio-frame: ms of sound per Opus packet. */
  audioFrameMs: AudioFrameMs;
  /** --push URL (repeatable): the stream also published to these RTSP servers (relay/rtsp/push.ts); checked by parsePushUrl. */
  push?: string[];
}

export interface RelayOptions extends CommonOptions, Pick<Secrets, 'key' | 'watchKey'> {
  host: string;
  port: number;
  /** Datagrams through the native recvmmsg/sendmmsg helper when it is built (--no-native: false). */
  native: boolean;
  /** --rtsp-port: the RTSP server's TCP port; 0: none. */
  rtspPort: number;
  /** It was given: taken, it is an error; the default taken only turns RTSP off, with a line. */
  rtspPortGiven: boolean;
  /** --push STREAM=URL (repeatable): a stream the relay carries, published to an RTSP server. */
  push?: Array<{ stream: string; url: string }>;
  /** --http: the HTTP server's TCP port (/streams.json, /metrics); 0: none. */
  httpPort: number;
  /** Whether --http was given (a taken default leaves HTTP off with a line; a taken given port is an error). */
  httpPortGiven: boolean;
}

export interface WatchOptions extends CommonOptions, Pick<Secrets, 'encrypt' | 'watchKey'> {
  target: HostPort;
  stream: string;
  player: 'ffplay' | 'none';
  output?: string;
  /** How long a lost packet may hold frames back while it is repaired; default from the RTT. */
  latencyMs?: number;
  /** --audio (default) keeps the sharer's sound; --no-audio mutes it. */
  audio: boolean;
}

/**
 * watch's target: the relay's (or sharer's) UDP port, never a URL. bin/udpcast.ts checks it as
 * yargs reads it (refuseUrl).
 */
export const WATCH_TARGET: TargetForm = {
  instead: (u) => {
    const stream = urlStream(u);
    const name = stream !== undefined && STREAM_NAME_RE.test(stream) ? stream : 'NAME';
    return `watch reads the relay's UDP port: udpcast watch ${urlHost(u)}[:PORT] --stream ${name} (PORT: the relay's --port, default ${DEFAULT_PORT})`;
  },
};

/** A value as the person typed it; yargs has already turned "abc" given for a number into NaN. */
function shown(v: unknown): string {
  return typeof v === 'number' && Number.isNaN(v) ? 'something that is not a number' : String(v);
}

export function checkPort(name: string, v: unknown, allowZero = false): number {
  const n = Number(v);
  const min = allowZero ? 0 : 1;
  if (!Number.isInteger(n) || n < min || n > 65535) {
    throw new UsageError(`--${name} must be ${min}-65535, got ${shown(v)}`);
  }
  return n;
}

export function checkInt(name: string, v: unknown, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number ${min}-${max}, got ${shown(v)}`);
  }
  return n;
}

/** A number min-max, fractions allowed (--fps 29.97). */
export function checkNumber(name: string, v: unknown, min: number, max: number, example: string): number {
  const n = Number(v);
  if (typeof v === 'boolean' || v === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a number ${min}-${max} (e.g. ${example}), got ${shown(v)}`);
  }
  return n;
}

/** Seconds, > 0 (fractions allowed). */
export function checkDuration(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 31 * 24 * 3600) {
    throw new UsageError(`--${name} must be seconds greater than 0, got ${shown(v)}`);
  }
  return n;
}

/**
 * What a command's HOST[:PORT] names, for the one line that refuses a URL given in its place.
 */
export interface TargetForm {
  /** The scheme whose URLs the command takes itself (sdp: rtsp, list: http); any other is refused. */
  scheme?: 'rtsp' | 'http';
  /** What the command reads instead and how to name it, from the refused URL's parts. */
  instead(url: TypedUrl): string;
}

/** Whom the URLs udpcast prints are for, said when one reaches a command that does not speak it. */
const URL_USERS: Readonly<Record<string, string>> = {
  rtsp: 'RTSP players such as ffplay or VLC (and udpcast sdp)',
  http: 'a browser (and udpcast list)',
};

/** A URL's host as HOST[:PORT] takes it: an IPv6 address in brackets. */
export const urlHost = (u: TypedUrl) => (u.host.includes(':') ? `[${u.host}]` : u.host);

/**
 * The stream a URL names, as udpcast prints them (rtsp://HOST:PORT/STREAM, http://HOST:PORT/watch/STREAM);
 * undefined for none ('/'); a path that is no stream name is returned as it is, for checkStream.
 */
export function urlStream(u: TypedUrl): string | undefined {
  const path = (u.scheme === 'http' ? (/^\/watch\/([^/]*)/.exec(u.path)?.[1] ?? '') : u.path.replace(/^\//, '')).replace(/\/$/, '');
  return path === '' ? undefined : decodeUrlPart(path);
}

/** An option's own form, for parseHostPort's callers that name none (share --relay). */
const optionForm = (name: string): TargetForm => ({ instead: (u) => `--${name} takes HOST[:PORT], as in --${name} ${urlHost(u)}[:PORT]` });

/** A URL as a message may show it: a password or a ?token= (a --watch-key) starred out. */
const shownUrl = (v: string) => redactUrl(v.trim()).replace(/([?&]token=)[^&#]*/gi, '$1***');

/**
 * `v` as a URL when it is one (typedUrl) of `form.scheme`; undefined when it is no URL. A URL of
 * another scheme is refused in one line: whom it is for, and what the command takes instead.
 */
export function refuseUrl(v: string, form: TargetForm): TypedUrl | undefined {
  const url = typedUrl(v);
  if (url === undefined || url.scheme === form.scheme) return url;
  const users = URL_USERS[url.scheme];
  throw new UsageError(`${shownUrl(v)} is ${users ? `for ${users}` : `a ${url.scheme}:// URL`}; ${form.instead(url)}`);
}

/**
 * "HOST", "HOST:PORT", "[v6]:PORT" or ":PORT"; a URL only of `form.scheme` (its port defaults as
 * any URL's, URL_DEFAULT_PORTS), returned with it as `url`, others refused (refuseUrl).
 */
export function parseHostPort(name: string, v: string, defaultPort = DEFAULT_PORT, form: TargetForm = optionForm(name)): HostPort & { url?: TypedUrl } {
  const url = refuseUrl(v, form);
  if (url) {
    const port = url.port === undefined || url.port === '' ? URL_DEFAULT_PORTS[url.scheme] : checkPort(name, url.port);
    if (!url.host || /\s/.test(url.host)) throw new UsageError(`--${name} must be ${url.scheme}://HOST[:PORT]/..., got ${JSON.stringify(shownUrl(v))}`);
    return { host: url.host, port, url };
  }
  const s = String(v).trim();
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  let host: string;
  let port: string | undefined;
  if (bracket) {
    host = bracket[1];
    port = bracket[2];
  } else if ((s.match(/:/g) ?? []).length > 1) {
    host = s; // a bare IPv6 address
  } else {
    const i = s.lastIndexOf(':');
    host = i >= 0 ? s.slice(0, i) : s;
    port = i >= 0 ? s.slice(i + 1) : undefined;
  }
  if (!host) host = '127.0.0.1';
  if (/\s/.test(host)) throw new UsageError(`--${name} must be HOST[:PORT], got ${JSON.stringify(v)}`);
  return { host, port: port === undefined || port === '' ? defaultPort : checkPort(name, port) };
}

export function parseSize(name: string, v: string): Size {
  const m = /^(\d{1,5})x(\d{1,5})$/i.exec(String(v).trim());
  const w = m ? Number(m[1]) : 0;
  const h = m ? Number(m[2]) : 0;
  if (!m || w < 16 || h < 16 || w > 8192 || h > 8192 || w % 2 || h % 2) {
    throw new UsageError(`--${name} must be WIDTHxHEIGHT, even numbers 16-8192 (e.g. 1280x720), got ${String(v)}`);
  }
  return { width: w, height: h };
}

/** "2500", "2500k", "2.5M" → kbit/s. */
export function parseBitrate(name: string, v: unknown): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmM]?)(?:bps|bit\/s)?$/.exec(String(v).trim());
  const kbps = m ? Number(m[1]) * (m[2].toLowerCase() === 'm' ? 1000 : 1) : NaN;
  if (!Number.isFinite(kbps) || kbps < 50 || kbps > 200_000) {
    throw new UsageError(`--${name} must be 50k-200M (e.g. 2500k or 4M), got ${String(v)}`);
  }
  return Math.round(kbps);
}

export function checkStream(v: unknown): string {
  const s = String(v);
  if (!STREAM_NAME_RE.test(s)) {
    throw new UsageError(`--stream must be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(s)}`);
  }
  return s;
}

export function checkChoice<T extends string>(name: string, v: unknown, choices: readonly T[]): T {
  if (!choices.includes(v as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got ${String(v)}`);
  return v as T;
}

/** Shortest passphrase we accept: scrypt slows guessing, it cannot save a short secret. */
const MIN_SECRET = 8;

/**
 * A passphrase option, or the first line of its --NAME-file (which keeps it out of `ps` and shell
 * history). Giving both is a mistake, not a choice.
 */
export function readSecret(name: string, value: unknown, file?: unknown): string | undefined {
  if (value !== undefined && file !== undefined) throw new UsageError(`give --${name} or --${name}-file, not both`);
  let v = value === undefined ? undefined : String(value);
  let from = `--${name}`;
  if (file !== undefined) {
    from = `--${name}-file ${String(file)}`;
    try {
      v = readFileSync(String(file), 'utf8').split(/\r?\n/)[0];
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new UsageError(`${from}: cannot read it (${e.code ?? e.message})`);
    }
  }
  if (v !== undefined && v.length < MIN_SECRET) {
    throw new UsageError(`${from} must hold at least ${MIN_SECRET} characters (a random one: openssl rand -base64 24)`);
  }
  return v;
}

/**
 * --output: '-' (stdout, not a terminal) or a file of a known container (outputFormat) that we
 * could write now (its folder there and writable), so a lost recording is an error at once.
 */
export function checkOutput(v: unknown, stdoutIsTTY = process.stdout.isTTY === true): string | undefined {
  if (v === undefined) return undefined;
  const path = String(v);
  if (path === '-') {
    if (stdoutIsTTY) {
      throw new UsageError('--output - would write video to this terminal: pipe it (udpcast watch --output - | ffplay -) or give a file such as rec.mkv');
    }
    return path;
  }
  outputFormat(path);
  // Checked without opening it: an existing file is replaced only when the recording starts (FileSink).
  try {
    const file = statSync(path, { throwIfNoEntry: false });
    if (file?.isDirectory()) throw Object.assign(new Error('a folder'), { code: 'EISDIR' });
    if (!file && !statSync(dirname(path)).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    accessSync(file ? path : dirname(path), constants.W_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'its folder does not exist' : e.code === 'EISDIR' ? 'it is a folder' : (e.code ?? e.message);
    throw new UsageError(`--output ${path}: cannot write there (${why})`);
  }
  return path;
}

/** RFC 5109 masks reach 48 packets: a column group spans (K − 1)·D + 1 of them. */
const FEC_MAX_SPAN = 47;

/**
 * --fec PCT [--fec-mode row|column|2d] [--fec-depth D]: one parity packet per K = 100/PCT media
 * packets (row), or per column of a K×D block (column: bursts up to D), or both (2d).
 */
export function parseFec(pct: unknown, mode: unknown, depth: unknown): ShareOptions['fec'] {
  if (pct === undefined) {
    if (mode !== undefined || depth !== undefined) throw new UsageError(`--fec-mode and --fec-depth go with --fec PCT (e.g. --fec 10)`);
    return undefined;
  }
  const p = Number(String(pct).replace(/%$/, ''));
  if (!Number.isFinite(p) || p < 2 || p > 50) throw new UsageError(`--fec must be 2-50 (percent of parity), got ${String(pct)}`);
  const groupSize = Math.round(100 / p);
  const m = checkChoice('fec-mode', mode ?? 'row', ['row', 'column', '2d'] as const);
  if (m === 'row') {
    if (depth !== undefined) throw new UsageError('--fec-depth goes with --fec-mode column or 2d');
    return { groupSize, mode: m };
  }
  const maxDepth = Math.floor(FEC_MAX_SPAN / (groupSize - 1));
  const d = depth === undefined ? Math.min(5, maxDepth) : checkInt('fec-depth', depth, 2, maxDepth);
  if (d < 2) throw new UsageError(`--fec-mode ${m} needs --fec of at least 5 (column groups of at most 24 packets)`);
  return { groupSize, mode: m, depth: d };
}

/** --push URL values: each an rtsp:// URL a person can fix from the message (parsePushUrl). */
export function checkPushUrls(v: unknown): string[] {
  const urls = v === undefined ? [] : [v].flat().map(String);
  for (const url of urls) parsePushUrl(url);
  return urls;
}

/** relay --push STREAM=URL values. */
export function parseRelayPush(v: unknown): RelayOptions['push'] {
  return (v === undefined ? [] : [v].flat().map(String)).map((text) => {
    const at = text.indexOf('=');
    const stream = at < 0 ? '' : text.slice(0, at);
    if (!STREAM_NAME_RE.test(stream) || !/^rtsp:\/\//i.test(text.slice(at + 1))) {
      throw new UsageError(`--push must be STREAM=rtsp://HOST[:PORT]/PATH (e.g. main=rtsp://127.0.0.1:8554/live), got ${JSON.stringify(redactUrl(text))}`);
    }
    const url = text.slice(at + 1);
    parsePushUrl(url);
    return { stream, url };
  });
}

export { parseRegion, parseSourceOption };

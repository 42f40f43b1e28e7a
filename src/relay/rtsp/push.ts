/**
 * `--push rtsp://[USER:PASSWORD@]HOST[:PORT]/PATH[?transport=udp]`: one stream the relay carries,
 * published to an RTSP server that records (RFC 2326 §10.11 ANNOUNCE, §10.11 RECORD): MediaMTX,
 * Wowza, FFmpeg's own listener (`ffmpeg -rtsp_flags listen -i rtsp://…`). The pusher is a viewer
 * of the relay like any other (relay/sink.ts): it joins through RelayCore.attach at RECORD, so each
 * connection starts at the cached keyframe.
 *
 *   OPTIONS  rtsp://host/path
 *   ANNOUNCE rtsp://host/path             Content-Type: application/sdp (sdp.ts, a=sendonly)
 *   SETUP    rtsp://host/path/trackID=0   Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record
 *   SETUP    rtsp://host/path/trackID=1   (the sound, when the stream has it) interleaved=2-3
 *   RECORD   rtsp://host/path             then RTP and RTCP as '$' frames on this connection
 *   OPTIONS  every RTSP_PUSH_KEEPALIVE_MS (or half the server's Session timeout)
 *   TEARDOWN at the end
 *
 * `?transport=udp` sends RTP/RTCP over UDP instead (client_port, from two local sockets per track
 * to the server_port its answer gives); TCP interleaved is the default: one connection, through
 * any NAT. A 401 is answered with Digest (digest.ts) or Basic from the URL's credentials, which
 * never appear in a request URI or a log line.
 *
 * What goes out: the picture's RTP (a payload type the codec registry knows; FEC and probes stay
 * inside udpcast) under one SSRC with continuous numbers across quality-layer moves, the sound as
 * plain Opus (RED cut to its primary block), and each sender report on the RTCP of its track.
 *
 * When the connection fails or closes, it is tried again after RTSP_PUSH_RETRY_MIN_MS, doubling to
 * RTSP_PUSH_RETRY_MAX_MS; said once per outage, and once when it publishes again. A refusal a
 * person must fix (a wrong password, ANNOUNCE refused with a 4xx) is retried at the slowest pace.
 * Bounded: the answer size (RTSP_PUSH_MAX_RESPONSE_BYTES), the write queue (RTSP_PUSH_QUEUE_BYTES,
 * excess dropped and counted, the picture then resumed at a keyframe). Nothing the server sends
 * throws out of here.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import {
  RTSP_PUSH_ANSWER_MS, RTSP_PUSH_KEEPALIVE_MS, RTSP_PUSH_QUEUE_BYTES,
  RTSP_PUSH_RETRY_MAX_MS, RTSP_PUSH_RETRY_MIN_MS, isAudioPayloadType,
} from '../../defaults.ts';
import { codecOfPayloadType } from '../../codecs/registry.ts';
import { isRtp, rtpPayloadType } from '../../rtp/packet.ts';
import { startsKeyframe } from '../../transport/keyframe.ts';
import { isRtcp } from '../../transport/rtcp.ts';
import { UsageError } from '../../util/errors.ts';
import { bindRtpPair, decodeUrlPart, type Endpoint } from '../../util/net.ts';
import type { RelayCore } from '../core.ts';
import type { DeliverySink } from '../sink.ts';
import { digestAnswer } from './digest.ts';
import { RtspReader, interleaved, type RtspResponse } from './message.ts';
import { OutgoingStream } from '../outgoing.ts';
import { AUDIO_TRACK, VIDEO_TRACK, describeStream, streamEncrypted } from './sdp.ts';

const header = (r: RtspResponse, name: string): string | undefined => r.headers.get(name);

// ---------------------------------------------------------------------------------------------
// The URL a person gives.

export interface PushTarget {
  /** The URL as logged and shown: no credentials, no transport choice. */
  url: string;
  /** The request URI of ANNOUNCE and RECORD (the same as url). */
  requestUri: string;
  /** Base of each track's SETUP URI (`${base}/trackID=N${query}`). */
  base: string;
  query: string;
  host: string;
  port: number;
  user?: string;
  password?: string;
  transport: 'tcp' | 'udp';
}

/** RTSP's registered port (RFC 2326 §3.2), when the URL names none. */
const RTSP_DEFAULT_PORT = 554;

/** `rtsp://[USER[:PASSWORD]@]HOST[:PORT][/PATH][?transport=tcp|udp&…]`; a person's error otherwise. */
export function parsePushUrl(text: string, option = '--push'): PushTarget {
  const { userinfo, rest } = splitUserinfo(text.trim());
  const m = /^rtsp:\/\/(\[[0-9A-Fa-f:.]+\]|[^/:?#[\]@\s]+)(?::(\d{1,5}))?(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(rest);
  if (!m) throw new UsageError(`${option} must be rtsp://[USER:PASSWORD@]HOST[:PORT]/PATH, got ${JSON.stringify(redactUrl(text))}`);
  const [, hostText, portText, path = '/', queryText = ''] = m;
  const port = portText === undefined ? RTSP_DEFAULT_PORT : Number(portText);
  if (port < 1 || port > 65535) throw new UsageError(`${option}: the port must be 1-65535, got ${portText}`);
  let transport: 'tcp' | 'udp' = 'tcp';
  const kept: string[] = [];
  for (const pair of queryText.split('&').filter(Boolean)) {
    const [name, value = ''] = pair.split('=');
    if (name !== 'transport') {
      kept.push(pair);
      continue;
    }
    if (value !== 'tcp' && value !== 'udp') throw new UsageError(`${option}: ?transport= must be tcp or udp, got ${JSON.stringify(value)}`);
    transport = value;
  }
  let user: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const at = userinfo.indexOf(':');
    user = decodeUrlPart(at < 0 ? userinfo : userinfo.slice(0, at));
    password = at < 0 ? '' : decodeUrlPart(userinfo.slice(at + 1));
  }
  const hostPort = `${hostText}${portText !== undefined ? `:${portText}` : ''}`;
  const query = kept.length ? `?${kept.join('&')}` : '';
  const url = `rtsp://${hostPort}${path}${query}`;
  return {
    url, requestUri: url, base: `rtsp://${hostPort}${path.replace(/\/$/, '')}`, query,
    host: hostText.replace(/^\[|\]$/g, ''), port, user, password, transport,
  };
}

/**
 * `…scheme://USERINFO@rest` → the user info and the text without it. The user info runs to the
 * last '@' before any '?' or '#': a password may hold '@' or '/' that were not percent-encoded.
 */
function splitUserinfo(text: string): { userinfo?: string; rest: string } {
  const scheme = /[a-z][a-z0-9+.-]*:\/\//i.exec(text);
  if (!scheme) return { rest: text };
  const start = scheme.index + scheme[0].length;
  const end = text.slice(start).search(/[?#]/);
  const at = text.lastIndexOf('@', end < 0 ? text.length : start + end);
  if (at < start) return { rest: text };
  return { userinfo: text.slice(start, at), rest: text.slice(0, start) + text.slice(at + 1) };
}

/** `text` with any password in it hidden (`rtsp://user:***@host/…`), for a log line or an error message. */
export function redactUrl(text: string): string {
  const { userinfo, rest } = splitUserinfo(text);
  if (userinfo === undefined) return text;
  const colon = userinfo.indexOf(':');
  const shown = colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:***`;
  return rest.replace(/([a-z][a-z0-9+.-]*:\/\/)/i, `$1${shown}@`);
}

// ---------------------------------------------------------------------------------------------
// The client.

export type PushState = 'waiting' | 'connecting' | 'publishing' | 'retrying' | 'stopped';

export interface PushCounters {
  /** RTP and RTCP packets sent to the server, and their bytes (without the '$' headers). */
  packetsSent: number;
  bytesSent: number;
  /** Packets not sent: over RTSP_PUSH_QUEUE_BYTES queued, or the picture's after such a drop until its next keyframe. */
  dropped: number;
  /** Connections that failed or closed (each retried). */
  failures: number;
  /** Times it published again after the first. */
  reconnects: number;
}

/** The --stats-json view of one push. */
export interface PushStatus extends PushCounters {
  stream: string;
  url: string;
  transport: 'tcp' | 'udp';
  state: PushState;
  /** Why the last connection ended, while it is retrying; null otherwise. */
  lastError: string | null;
}

export interface RtspPusherOptions {
  core: RelayCore;
  stream: string;
  /** The URL as given (credentials and ?transport= included); parsePushUrl checks it. */
  url: string;
  /** The core has a viewer to catch up (this one, at RECORD): the relay's pump must run. */
  pump(): void;
  log?: (line: string) => void;
  now?: () => number;
  /** Retry pace, for tests; defaults RTSP_PUSH_RETRY_MIN_MS / _MAX_MS. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** A failure of one connection; `slow`: a person's setting, retried at the slowest pace. */
class PushFailure extends Error {
  constructor(message: string, readonly slow = false) {
    super(message);
    this.name = 'PushFailure';
  }
}

interface Track {
  kind: 'video' | 'audio';
  /** TCP: the interleaved channels. */
  rtpChannel: number;
  rtcpChannel: number;
  /** UDP: the local sockets and where they send. */
  rtp?: dgram.Socket;
  rtcp?: dgram.Socket;
  rtpTo?: Endpoint;
  rtcpTo?: Endpoint;
}

interface Waiter {
  resolve(r: RtspResponse): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** One connection to the server, from connect to close. */
interface Connection {
  socket: net.Socket;
  reader: RtspReader;
  cseq: number;
  waiters: Map<string, Waiter>;
  session?: string;
  keepaliveMs: number;
  lastRequestAt: number;
  /** The server's latest challenge, answered on every request after it. */
  challenge?: string;
  tracks: Track[];
  /** The picture's payload type as announced; other video payload types are not sent. */
  videoPt: number;
  /** The stream's publisher (its SSRC) when announced: another one is announced anew. */
  publisherSsrc: number;
  sink?: DeliverySink;
  /** What it is sent, shaped for a receiver outside udpcast (outgoing.ts); from RECORD on. */
  out?: OutgoingStream;
  /** After a drop, the picture waits for its next keyframe. */
  videoBroken: boolean;
  closed: boolean;
  /** When RECORD was answered: a connection that lasted RTSP_PUSH_RETRY_MAX_MS starts the back-off afresh. */
  publishingSince?: number;
  onClose?: (why: Error) => void;
}

const TICK_MS = 1000;
/** How long close() waits for the server's answer to TEARDOWN. */
const TEARDOWN_WAIT_MS = 1000;

let pushers = 0;

export class RtspPusher {
  readonly target: PushTarget;
  readonly counters: PushCounters = { packetsSent: 0, bytesSent: 0, dropped: 0, failures: 0, reconnects: 0 };
  private state: PushState = 'waiting';
  private conn?: Connection;
  private readonly id = `push:${++pushers}`;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private delay: number;
  /** Between a failure and the next RECORD: only the first failure (or a new reason) is logged. */
  private outage?: string;
  private lastError: string | null = null;
  private published = false;

  constructor(private readonly opts: RtspPusherOptions) {
    this.target = parsePushUrl(opts.url);
    this.now = opts.now ?? Date.now;
    this.delay = opts.retryMinMs ?? RTSP_PUSH_RETRY_MIN_MS;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    this.tick();
  }

  get status(): PushStatus {
    return { stream: this.opts.stream, url: this.target.url, transport: this.target.transport, state: this.state, lastError: this.lastError, ...this.counters };
  }

  /** Stops: TEARDOWN when publishing (waited for up to TEARDOWN_WAIT_MS), then the connection closes. */
  async close(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    const c = this.conn;
    if (!c) return;
    this.detach(c);
    if (c.session && !c.closed) {
      await Promise.race([
        this.request(c, 'TEARDOWN', this.target.requestUri).catch(() => undefined),
        new Promise((r) => setTimeout(r, TEARDOWN_WAIT_MS).unref()),
      ]);
    }
    this.end(c);
    if (!c.socket.destroyed) {
      // The queued media first, then the FIN; a server that does not close its side is cut.
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          c.socket.destroy();
          resolve();
        }, TEARDOWN_WAIT_MS);
        t.unref();
        c.socket.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        c.socket.end();
      });
    }
  }

  private log(line: string): void {
    this.opts.log?.(`push ${this.target.url}: ${line}`);
  }

  private tick(): void {
    if (this.state === 'stopped') return;
    const now = this.now();
    const c = this.conn;
    if (c?.sink) {
      // The relay drops a viewer not heard from in VIEWER_TIMEOUT_MS: this is the pusher's keepalive.
      this.opts.core.attach(this.opts.stream, c.sink, now);
      const publisher = this.opts.core.streams.get(this.opts.stream)?.publisher;
      if (!publisher) {
        // The sharer stopped: the server's recording ends with it, and the next sharer is a new one.
        this.log('the stream ended: TEARDOWN; announced again when it is back');
        this.outage = 'the stream ended';
        this.restart(c);
        return;
      }
      if (publisher.ssrc !== c.publisherSsrc) {
        // A new sharer (new SSRCs, clocks, perhaps another codec): announced anew, from its keyframe.
        this.log('the stream has a new sharer: announcing it again');
        this.restart(c);
        return;
      }
      if (now - c.lastRequestAt >= c.keepaliveMs) {
        this.request(c, 'OPTIONS', this.target.requestUri).catch((e: Error) => this.fail(c, e));
      }
      return;
    }
    if (this.state === 'waiting') this.connect();
  }

  /** A connection, once the stream has a keyframe to describe. */
  private connect(): void {
    const stream = this.opts.core.streams.get(this.opts.stream);
    if (streamEncrypted(stream)) {
      if (this.outage !== 'encrypted') this.log(`stream ${this.opts.stream} is end-to-end encrypted (share --encrypt): a server could not read it, so it is not pushed`);
      this.outage = 'encrypted';
      return;
    }
    const sdp = describeStream(stream, 'sendonly');
    const publisher = stream?.publisher;
    if (!sdp || !publisher) return;
    this.state = 'connecting';
    const socket = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
    const c: Connection = {
      socket, reader: new RtspReader('client'), cseq: 0, waiters: new Map(), keepaliveMs: RTSP_PUSH_KEEPALIVE_MS, lastRequestAt: this.now(),
      tracks: [], videoPt: Number(/^m=video \d+ RTP\/AVP (\d+)/m.exec(sdp)?.[1] ?? -1), publisherSsrc: publisher.ssrc, videoBroken: false, closed: false,
    };
    this.conn = c;
    socket.setTimeout(RTSP_PUSH_ANSWER_MS, () => {
      if (!c.session) socket.destroy(new PushFailure('no answer'));
    });
    socket.on('data', (chunk) => this.onData(c, chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(c, err));
    socket.on('close', () => this.fail(c, new PushFailure('the server closed the connection')));
    this.handshake(c, sdp).then(
      () => this.recording(c),
      (e: Error) => this.fail(c, e),
    );
  }

  private async handshake(c: Connection, sdp: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      c.socket.once('connect', resolve);
      c.onClose = reject;
    });
    const t = this.target;
    const options = await this.request(c, 'OPTIONS', t.requestUri);
    if (options.status === 401) throw this.unauthorized(c);
    const announce = await this.request(c, 'ANNOUNCE', t.requestUri, [['Content-Type', 'application/sdp']], sdp);
    if (announce.status === 401) throw this.unauthorized(c);
    if (announce.status !== 200) {
      const refused = `the server refused ANNOUNCE: ${announce.status} ${announce.reason}`.trim();
      throw new PushFailure(refused, announce.status >= 400 && announce.status < 500);
    }
    const kinds: Array<['video' | 'audio', number]> = [['video', VIDEO_TRACK]];
    if (/^m=audio /m.test(sdp)) kinds.push(['audio', AUDIO_TRACK]);
    for (const [kind, n] of kinds) {
      const track: Track = { kind, rtpChannel: 2 * n, rtcpChannel: 2 * n + 1 };
      c.tracks.push(track);
      let transport: string;
      if (t.transport === 'udp') {
        await this.bindUdp(c, track);
        transport = `RTP/AVP;unicast;client_port=${track.rtp!.address().port}-${track.rtcp!.address().port};mode=record`;
      } else {
        transport = `RTP/AVP/TCP;unicast;interleaved=${track.rtpChannel}-${track.rtcpChannel};mode=record`;
      }
      const setup = await this.request(c, 'SETUP', `${t.base}/trackID=${n}${t.query}`, [['Transport', transport]]);
      if (setup.status === 401) throw this.unauthorized(c);
      if (setup.status !== 200) throw new PushFailure(`the server refused SETUP of the ${kind}: ${setup.status} ${setup.reason}`.trim());
      const session = header(setup, 'session');
      if (session) {
        const [id, ...params] = session.split(';').map((s) => s.trim());
        c.session ??= id;
        const timeout = params.map((p) => /^timeout=(\d{1,6})$/i.exec(p)).find(Boolean);
        if (timeout) c.keepaliveMs = Math.max(1000, Math.min(RTSP_PUSH_KEEPALIVE_MS, (Number(timeout[1]) * 1000) / 2));
      }
      const answer = header(setup, 'transport') ?? '';
      if (t.transport === 'udp') {
        const ports = /server_port=(\d{1,5})(?:-(\d{1,5}))?/i.exec(answer);
        if (!ports) throw new PushFailure(`the server's SETUP answer names no server_port (Transport: ${answer.slice(0, 100)}): try without ?transport=udp`);
        const address = c.socket.remoteAddress ?? t.host;
        track.rtpTo = { address, port: Number(ports[1]) };
        track.rtcpTo = { address, port: ports[2] !== undefined ? Number(ports[2]) : Number(ports[1]) + 1 };
      } else {
        // The server may pick other channels (RFC 2326 §12.39): its answer rules.
        const channels = /interleaved=(\d{1,3})(?:-(\d{1,3}))?/i.exec(answer);
        if (channels && Number(channels[1]) <= 255) {
          track.rtpChannel = Number(channels[1]);
          track.rtcpChannel = channels[2] !== undefined ? Number(channels[2]) & 0xff : (track.rtpChannel + 1) & 0xff;
        }
      }
    }
    if (!c.session) throw new PushFailure('the server\'s SETUP answer has no Session');
    const record = await this.request(c, 'RECORD', t.requestUri, [['Range', 'npt=0.000-']]);
    if (record.status === 401) throw this.unauthorized(c);
    if (record.status !== 200) throw new PushFailure(`the server refused RECORD: ${record.status} ${record.reason}`.trim());
  }

  private unauthorized(c: Connection): PushFailure {
    const t = this.target;
    if (t.user === undefined) return new PushFailure(`the server asks for a user name and password (401): give them in the URL, rtsp://USER:PASSWORD@${t.url.slice('rtsp://'.length)}`, true);
    return new PushFailure(c.challenge ? `the server refused user ${JSON.stringify(t.user)} or its password (401)` : 'the server answered 401 with no challenge this client can answer', true);
  }

  private async bindUdp(c: Connection, track: Track): Promise<void> {
    const { rtp, rtcp } = await bindRtpPair(net.isIPv6(c.socket.remoteAddress ?? '') ? 'udp6' : 'udp4');
    // The connection closed while they were bound: end() has run, and would not close them now.
    if (c.closed) {
      rtp.close();
      rtcp.close();
      return;
    }
    for (const s of [rtp, rtcp]) {
      s.on('error', () => undefined); // an ICMP unreachable from a server gone away: the TCP side tells
      s.on('message', () => undefined); // its receiver reports: nothing here reads them
    }
    track.rtp = rtp;
    track.rtcp = rtcp;
  }

  /** One request; resolves with its answer, a 401 answered once with the URL's credentials. */
  private async request(c: Connection, method: string, uri: string, headers: Array<[string, string]> = [], body?: string): Promise<RtspResponse> {
    let r = await this.send(c, method, uri, headers, body);
    if (r.status === 401 && this.target.user !== undefined) {
      const offered = r.lines.filter(([name]) => name === 'www-authenticate').map(([, value]) => value);
      const challenge = offered.find((h) => /^Digest\s/i.test(h)) ?? offered.find((h) => /^Basic\b/i.test(h));
      // Answered once per new challenge: the same one twice means the credentials are wrong (a
      // new nonce, stale=true, is a new challenge).
      if (challenge && challenge !== c.challenge) {
        c.challenge = challenge;
        r = await this.send(c, method, uri, headers, body);
      }
    }
    return r;
  }

  private send(c: Connection, method: string, uri: string, headers: Array<[string, string]>, body?: string): Promise<RtspResponse> {
    if (c.closed) return Promise.reject(new PushFailure('the connection closed'));
    const cseq = String(++c.cseq);
    const lines = [`${method} ${uri} RTSP/1.0`, `CSeq: ${cseq}`, 'User-Agent: udpcast'];
    if (c.session) lines.push(`Session: ${c.session}`);
    const auth = this.authorization(c, method, uri);
    if (auth) lines.push(`Authorization: ${auth}`);
    for (const [name, value] of headers) lines.push(`${name}: ${value}`);
    if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
    c.lastRequestAt = this.now();
    c.socket.write(`${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
    return new Promise<RtspResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.waiters.delete(cseq);
        reject(new PushFailure(`no answer to ${method} in ${RTSP_PUSH_ANSWER_MS / 1000} s`));
      }, RTSP_PUSH_ANSWER_MS);
      timer.unref();
      c.waiters.set(cseq, { resolve, reject, timer });
    });
  }

  private authorization(c: Connection, method: string, uri: string): string | undefined {
    const t = this.target;
    if (!c.challenge || t.user === undefined) return undefined;
    if (/^Basic\b/i.test(c.challenge)) return `Basic ${Buffer.from(`${t.user}:${t.password ?? ''}`).toString('base64')}`;
    return digestAnswer(c.challenge, method, uri, t.password ?? '', t.user);
  }

  private onData(c: Connection, chunk: Buffer): void {
    try {
      for (const item of c.reader.push(chunk)) {
        if (item.kind === 'bad') {
          c.socket.destroy(new PushFailure(`the server sent ${item.why}`));
          return;
        }
        if (item.kind === 'interleaved') continue; // its receiver reports: nothing here reads them
        if (item.kind === 'request') {
          // A request from the server (RFC 2326 allows a few, e.g. SET_PARAMETER): none is needed here.
          const asked = item.request.headers.get('cseq');
          const cseq = asked !== undefined ? `CSeq: ${asked.slice(0, 32)}\r\n` : '';
          // A server that asks and never reads gets its connection cut, not a queue without end.
          if (c.socket.writableLength > RTSP_PUSH_QUEUE_BYTES) {
            c.socket.destroy(new PushFailure('the server sent requests and read no answers'));
            return;
          }
          c.socket.write(`RTSP/1.0 501 Not Implemented\r\n${cseq}\r\n`);
          continue;
        }
        const cseq = header(item.response, 'cseq') ?? '';
        const w = c.waiters.get(cseq);
        if (!w) continue; // an answer to nothing asked (or asked long ago): ignored
        c.waiters.delete(cseq);
        clearTimeout(w.timer);
        w.resolve(item.response);
      }
    } catch (err) {
      // Nothing the server sends may stop the relay: whatever broke, this connection ends.
      c.socket.destroy(new PushFailure(`reading the server's answer: ${(err as Error).message}`));
    }
  }

  /** RECORD answered: the pusher joins the stream as a viewer, from the cached keyframe. */
  private recording(c: Connection): void {
    if (c !== this.conn || c.closed || this.state === 'stopped') return;
    const sink: DeliverySink = {
      kind: 'push',
      id: this.id,
      endpoint: { address: c.socket.remoteAddress ?? this.target.host, port: c.socket.remotePort ?? this.target.port },
      deliver: (data) => this.deliver(c, data),
      closed: () => {
        if (c.sink !== sink) return;
        c.sink = undefined;
        this.log('the relay dropped this push as a viewer: announcing again');
        this.restart(c);
      },
    };
    const now = this.now();
    if (!this.opts.core.attach(this.opts.stream, sink, now)) {
      this.fail(c, new PushFailure('the relay has no room for another viewer'));
      return;
    }
    c.sink = sink;
    const stream = this.opts.core.streams.get(this.opts.stream);
    c.out = new OutgoingStream(stream?.viewers.get(sink.id)?.lane.ssrc ?? stream?.ssrc, stream?.sound.ssrc);
    this.state = 'publishing';
    this.lastError = null;
    c.publishingSince = now;
    const how = this.target.transport === 'udp' ? 'RTP over UDP' : 'RTP interleaved on the RTSP connection';
    if (!this.published) this.log(`publishing stream ${this.opts.stream} (${how})`);
    else if (this.outage !== undefined) this.log('publishing again');
    if (this.published) this.counters.reconnects++;
    this.published = true;
    this.outage = undefined;
    this.opts.pump();
  }

  private deliver(c: Connection, data: Buffer): boolean {
    try {
      return this.deliverOne(c, data);
    } catch {
      return true; // a packet no parser takes: not the server's to see
    }
  }

  private deliverOne(c: Connection, data: Buffer): boolean {
    const out = c.out;
    if (c.closed || !out) return false;
    if (isRtp(data)) {
      const pt = rtpPayloadType(data);
      if (isAudioPayloadType(pt)) {
        const track = c.tracks.find((t) => t.kind === 'audio');
        if (!track || !out.soundIsNew(data)) return true;
        const opus = out.sound(data);
        return opus ? this.sendTo(c, track, 'rtp', opus) : true;
      }
      if (pt !== c.videoPt || !codecOfPayloadType(pt)) return true; // FEC, probes, another codec than announced
      const track = c.tracks.find((t) => t.kind === 'video')!;
      if (c.videoBroken) {
        if (!startsKeyframe(data)) {
          this.counters.dropped++;
          return true;
        }
        c.videoBroken = false;
      }
      // The server reads what it records in the order it comes: a late packet is left out over TCP.
      const pkt = out.nextPicture(data, this.target.transport === 'tcp');
      if (!pkt) return true;
      const sent = this.sendTo(c, track, 'rtp', pkt);
      if (!sent) c.videoBroken = true;
      return true;
    }
    // The sharer's reports; the rest of its RTCP (SDES, BYE, the relay's own messages) stays inside udpcast.
    if (!isRtcp(data)) return true;
    for (const r of out.reports(data)) {
      const track = c.tracks.find((t) => t.kind === r.kind);
      if (track) this.sendTo(c, track, 'rtcp', r.data);
    }
    return true;
  }

  /** False: dropped (the queue is full). */
  private sendTo(c: Connection, track: Track, what: 'rtp' | 'rtcp', data: Buffer): boolean {
    if (track.rtp) {
      const socket = what === 'rtp' ? track.rtp : track.rtcp!;
      const to = what === 'rtp' ? track.rtpTo! : track.rtcpTo!;
      if (socket.getSendQueueSize() > RTSP_PUSH_QUEUE_BYTES) {
        this.counters.dropped++;
        return false;
      }
      socket.send(data, to.port, to.address);
    } else {
      if (c.socket.destroyed) return false;
      if (c.socket.writableLength > RTSP_PUSH_QUEUE_BYTES) {
        this.counters.dropped++;
        return false;
      }
      c.socket.write(interleaved(what === 'rtp' ? track.rtpChannel : track.rtcpChannel, data));
    }
    this.counters.packetsSent++;
    this.counters.bytesSent += data.length;
    return true;
  }

  private detach(c: Connection): void {
    if (!c.sink) return;
    c.sink = undefined;
    this.opts.core.detach(this.opts.stream, this.id);
  }

  /** Frees what a connection holds; idempotent. */
  private end(c: Connection): void {
    if (c.closed) return;
    c.closed = true;
    this.detach(c);
    for (const w of c.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(new PushFailure('the connection closed'));
    }
    c.waiters.clear();
    for (const t of c.tracks) for (const s of [t.rtp, t.rtcp]) s?.close();
  }

  /** Ends `c` (TEARDOWN said, not waited for) and connects again at once, for a new SDP. */
  private restart(c: Connection): void {
    if (c !== this.conn) return;
    if (c.session && !c.socket.destroyed) this.send(c, 'TEARDOWN', this.target.requestUri, []).catch(() => undefined);
    this.end(c);
    c.socket.end();
    // A server that never closes its side is cut, so no half-open connection stays behind.
    setTimeout(() => c.socket.destroy(), TEARDOWN_WAIT_MS).unref();
    this.conn = undefined;
    this.state = 'waiting';
    this.tick();
  }

  /** A connection failed or closed: said once per outage, tried again after the back-off. */
  private fail(c: Connection, err: Error): void {
    c.onClose?.(err);
    c.onClose = undefined;
    if (c !== this.conn) {
      this.end(c);
      return;
    }
    this.end(c);
    c.socket.destroy();
    this.conn = undefined;
    if (this.state === 'stopped') return;
    this.counters.failures++;
    const why = describe(err);
    const slow = err instanceof PushFailure && err.slow;
    const max = this.opts.retryMaxMs ?? RTSP_PUSH_RETRY_MAX_MS;
    // The back-off starts afresh only after a push that lasted: a server that takes RECORD and
    // drops the connection at once is not tried every second.
    if (c.publishingSince !== undefined && this.now() - c.publishingSince >= max) this.delay = this.opts.retryMinMs ?? RTSP_PUSH_RETRY_MIN_MS;
    const wait = slow ? max : this.delay;
    if (!slow) this.delay = Math.min(max, this.delay * 2);
    if (this.outage !== why) this.log(`${why}, retrying in ${round(wait / 1000)} s`);
    this.outage = why;
    this.lastError = why;
    this.state = 'retrying';
    this.retryTimer = setTimeout(() => {
      if (this.state !== 'retrying') return;
      this.state = 'waiting';
      this.tick();
    }, wait);
    this.retryTimer.unref();
  }
}

/** A connection's end as a person reads it. */
function describe(err: Error): string {
  if (err instanceof PushFailure) return err.message;
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'the server reset the connection';
    case 'ETIMEDOUT':
      return 'no answer';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'the server cannot be reached';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    default:
      return code ?? err.message;
  }
}

function round(s: number): number {
  return Math.round(s * 10) / 10;
}

/**
 * The relay as an RTSP server (RFC 2326, the subset players use): every stream the relay carries is
 * `rtsp://HOST:PORT/STREAM`, so ffplay, FFmpeg, VLC, GStreamer and media servers play it with no
 * udpcast of their own. An RTSP viewer is a viewer like any other (relay/sink.ts): it joins through
 * RelayCore.attach at PLAY, so it starts at once from the keyframe cache, its RTCP (receiver
 * reports, NACKs, PLI) goes through RelayCore.onViewerRtcp, and the dashboard counts it.
 *
 *   OPTIONS                 the methods below
 *   DESCRIBE /STREAM        SDP of the stream's real parameters: the picture's codec (H.264 with
 *                           sprop-parameter-sets from the cached keyframe), and Opus when it has sound
 *   SETUP /STREAM/trackID=N RTP/AVP over UDP (client_port) or RTP/AVP/TCP interleaved on this connection
 *   PLAY                    the viewer joins; GET_PARAMETER and OPTIONS with the session keep it
 *   TEARDOWN                it leaves
 *
 * What a viewer is sent: the stream's RTP as it comes (the sound's RED, RFC 2198, cut down to its
 * primary Opus block, since a player that reads RFC 7587 takes plain Opus), and each sender report
 * of the sharer on the RTCP of the track it is about, so the player maps both clocks to one. A
 * libavformat player (its User-Agent `Lavf…`: ffplay, ffmpeg, ffprobe) is also sent each next
 * picture's delimiter as soon as a picture ends (OutgoingStream.pictureEnd): its parser would hold
 * the picture a frame longer.
 *
 * Bounded (defaults.ts RTSP_*): connections, sessions, request size and header count, a request that
 * does not complete in time (slowloris), a TCP reader too slow for the stream (its excess dropped and
 * counted). Nothing a client sends throws here: a malformed request is answered 400 and the
 * connection closed.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import {
  RTSP_IDLE_REQUEST_MS, RTSP_MAX_CONNECTIONS, RTSP_MAX_CONNECTIONS_PER_ADDRESS, RTSP_MAX_SESSIONS, RTSP_MAX_SESSIONS_PER_ADDRESS,
  RTSP_PLAY_WAIT_MS, RTSP_SESSION_TIMEOUT_S, RTSP_TCP_QUEUE_BYTES, isAudioPayloadType,
} from '../../defaults.ts';
import { codecOfPayloadType } from '../../codecs/registry.ts';
import { isRtp, rtpPayloadType } from '../../rtp/packet.ts';
import { isRtcp } from '../../transport/rtcp.ts';
import { bindRtpPair, decodeUrlPart, formatEndpoint, listenTcp, type Endpoint } from '../../util/net.ts';
import type { RelayCore } from '../core.ts';
import { endpointKey, type DeliverySink, type Output } from '../sink.ts';
import { DigestAuth } from './digest.ts';
import { OutgoingStream } from '../outgoing.ts';
import { AUDIO_TRACK, VIDEO_TRACK, describeStream, parseAnnounce, streamEncrypted } from './sdp.ts';
import { recordRtcp, recordRtp, recordTracks, trackOfUri, type RecordTrack } from './record.ts';
import { RtspReader, interleaved, parseTransport, rtspResponse, type RtspRequest, type RtspTransport } from './message.ts';

export interface RtspServerOptions {
  host: string;
  port: number;
  core: RelayCore;
  /** Sends what the core answers a viewer's RTCP with (to the sharer) through the relay's socket. */
  send(outputs: Output[]): void;
  /** The core has viewers to catch up: the relay's pump must run. */
  pump(): void;
  /** The relay's --watch-key: players must prove it (Digest, digest.ts), any user name. */
  watchPassword?: string;
  /** The relay's --key: RTSP publishers (ANNOUNCE, RECORD) must prove it, any user name. */
  publishPassword?: string;
  log?: (line: string) => void;
  now?: () => number;
}

export interface RtspCounters {
  connections: number;
  requests: number;
  /** Requests that broke the protocol or a limit; their connections were closed. */
  badRequests: number;
  sessions: number;
  /** Sessions refused: RTSP_MAX_SESSIONS, or the relay's own caps. */
  sessionsRefused: number;
  /** Connections refused at RTSP_MAX_CONNECTIONS, or closed for a request that did not complete. */
  connectionsDropped: number;
  sessionTimeouts: number;
  /** Packets not sent to a TCP reader that had RTSP_TCP_QUEUE_BYTES queued. */
  tcpDropped: number;
  /** Requests refused for want of the --watch-key or --key (a client's first try, without credentials, counts too). */
  unauthorized: number;
  /** Streams published over RTSP (RECORD), and ANNOUNCEs or RECORDs refused (taken, full, no picture udpcast carries). */
  published: number;
  publishRefused: number;
  /** Packets from RTSP publishers not passed on: tracks udpcast does not carry, or not their RTP. */
  recordDropped: number;
}

interface Track {
  kind: 'video' | 'audio';
  transport: RtspTransport;
  /** A publisher's track: its place in the session's record tracks. */
  recordIndex?: number;
  /** Where its RTP and RTCP go (UDP). */
  rtpTo?: Endpoint;
  rtcpTo?: Endpoint;
}

interface Session {
  id: string;
  stream: string;
  /** When its first SETUP came: one not played within RTSP_PLAY_WAIT_MS ends. */
  since: number;
  conn: Connection;
  tracks: Track[];
  sink?: DeliverySink;
  lastSeen: number;
  /** What it is sent, shaped for a player (outgoing.ts); from PLAY on. */
  out?: OutgoingStream;
  /**
   * The player reads RTP with libavformat and keeps its User-Agent (`Lavf…`: ffplay, ffmpeg,
   * ffprobe): it is sent each next picture's delimiter at once (OutgoingStream.pictureEnd).
   */
  libavformat?: boolean;
  /** A publisher's session (ANNOUNCE, RECORD) instead of a player's: its tracks, and whether RECORD came. */
  record?: { uri: string; tracks: RecordTrack[]; recording: boolean };
}

interface Connection {
  socket: net.Socket;
  reader: RtspReader;
  remote: Endpoint;
  lastRequestAt: number;
  /** Since when part of a message has waited for the rest (slowloris), if any has. */
  partialSince?: number;
  sessions: Set<Session>;
  /** The last ANNOUNCE on this connection, for the SETUPs that follow it. */
  announced?: { stream: string; uri: string; tracks: RecordTrack[] };
}

const TICK_MS = 1000;
/** Distinct logOnce keys remembered before starting over. */
const MAX_LOGGED = 1000;
const METHODS = 'OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, ANNOUNCE, RECORD';
type Reply = (status: number, headers?: Array<[string, string]>, body?: string) => void;

export class RtspServer {
  readonly counters: RtspCounters = {
    connections: 0, requests: 0, badRequests: 0, sessions: 0, sessionsRefused: 0, connectionsDropped: 0, sessionTimeouts: 0, tcpDropped: 0, unauthorized: 0,
    published: 0, publishRefused: 0, recordDropped: 0,
  };
  private readonly sessions = new Map<string, Session>();
  private readonly connections = new Set<Connection>();
  /** UDP sessions by the address their RTCP comes from. */
  private readonly byRtcpSource = new Map<string, Session>();
  /** UDP publishers' tracks by the address their RTP or RTCP comes from. */
  private readonly recordFrom = new Map<string, { session: Session; track: RecordTrack; rtcp: boolean }>();
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  private readonly digest?: DigestAuth;
  private readonly publishDigest?: DigestAuth;
  /** logOnce's keys. */
  private readonly logged = new Set<string>();
  private closed = false;

  private constructor(
    private readonly opts: RtspServerOptions,
    private readonly tcp: net.Server,
    private readonly rtp: dgram.Socket,
    private readonly rtcp: dgram.Socket,
  ) {
    this.now = opts.now ?? Date.now;
    if (opts.watchPassword !== undefined) this.digest = new DigestAuth(opts.watchPassword, this.now);
    if (opts.publishPassword !== undefined) this.publishDigest = new DigestAuth(opts.publishPassword, this.now, 'udpcast publish');
    tcp.on('connection', (s) => this.accept(s));
    rtcp.on('message', (buf, from) => this.onRtcp(buf, { address: from.address, port: from.port }));
    // The RTP port receives publishers' media, and players' hole-punching datagrams (nothing to read in those).
    rtp.on('message', (buf, from) => {
      const r = this.recordFrom.get(endpointKey({ address: from.address, port: from.port }));
      if (r && !r.rtcp) this.recorded(r.session, r.track, buf, false);
    });
    for (const s of [rtp, rtcp]) s.on('error', (err) => opts.log?.(`rtsp: udp: ${err.message}`));
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  static async start(opts: RtspServerOptions): Promise<RtspServer> {
    const tcp = net.createServer({ noDelay: true });
    tcp.maxConnections = RTSP_MAX_CONNECTIONS;
    await listenTcp(tcp, opts.port, opts.host);
    tcp.on('error', (err) => opts.log?.(`rtsp: ${err.message}`));
    const { rtp, rtcp } = await bindRtpPair(opts.host.includes(':') ? 'udp6' : 'udp4', opts.host);
    const server = new RtspServer(opts, tcp, rtp, rtcp);
    tcp.on('drop', () => server.counters.connectionsDropped++);
    return server;
  }

  get port(): number {
    return (this.tcp.address() as net.AddressInfo).port;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const s of [...this.sessions.values()]) this.end(s, true);
    for (const c of this.connections) c.socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
      new Promise<void>((resolve) => this.rtp.close(() => resolve())),
      new Promise<void>((resolve) => this.rtcp.close(() => resolve())),
    ]);
  }

  private accept(socket: net.Socket): void {
    const address = socket.remoteAddress ?? '';
    if ([...this.connections].filter((c) => c.remote.address === address).length >= RTSP_MAX_CONNECTIONS_PER_ADDRESS) {
      this.counters.connectionsDropped++;
      socket.destroy();
      return;
    }
    this.counters.connections++;
    const conn: Connection = {
      socket, reader: new RtspReader(), remote: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }, lastRequestAt: this.now(), sessions: new Set(),
    };
    this.connections.add(conn);
    socket.on('data', (chunk) => {
      const bad = () => {
        this.counters.badRequests++;
        socket.end(rtspResponse(400, undefined));
      };
      if (conn.reader.pending === 0) conn.partialSince = this.now();
      let items;
      try {
        items = conn.reader.push(chunk);
        for (const item of items) {
          if (item.kind === 'bad') return bad();
          if (item.kind === 'interleaved') this.onInterleaved(conn, item.channel, item.data);
          else if (item.kind === 'request') this.onRequest(conn, item.request);
        }
      } catch {
        // Nothing a client sends may stop the relay: whatever this request broke, it is its own end.
        return bad();
      }
      // Slow is a message that does not complete: a publisher streaming interleaved media ends its
      // chunks mid-frame all the time, but completes frames as it goes.
      if (conn.reader.pending === 0) conn.partialSince = undefined;
      else if (items.length > 0) conn.partialSince = this.now();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.connections.delete(conn);
      // Interleaved sessions die with their connection; UDP ones live on to their timeout (RFC 2326
      // §10.12), but for a publisher's: a publisher that hung up has stopped.
      for (const s of conn.sessions) if (s.record || s.tracks.some((t) => t.transport.kind === 'tcp')) this.end(s, true);
    });
  }

  private onRequest(conn: Connection, req: RtspRequest): void {
    this.counters.requests++;
    const now = this.now();
    conn.lastRequestAt = now;
    const cseq = req.headers.get('cseq');
    const reply = (status: number, headers: Array<[string, string]> = [], body?: string) => {
      if (conn.socket.destroyed) return;
      // A client that asks and never reads: its answers are not queued without end.
      if (conn.socket.writableLength > RTSP_TCP_QUEUE_BYTES) {
        this.counters.connectionsDropped++;
        conn.socket.destroy();
        return;
      }
      conn.socket.write(rtspResponse(status, cseq, headers, body));
    };
    const sessionId = req.headers.get('session')?.split(';')[0].trim();
    const session = sessionId !== undefined ? this.sessions.get(sessionId) : undefined;
    if (sessionId !== undefined && !session && req.method !== 'OPTIONS') return reply(454);
    // A publisher's session is driven from its own connection only (its id travels in the clear).
    if (session?.record && session.conn !== conn) return reply(454);
    if (session) session.lastSeen = now;
    const path = rtspPath(req.uri);
    switch (req.method) {
      case 'OPTIONS':
        return reply(200, [['Public', METHODS]]);
      case 'GET_PARAMETER':
        return reply(200);
      case 'DESCRIBE': {
        if (!this.authorized(req)) return reply(401, [['WWW-Authenticate', this.digest!.challenge()]]);
        const stream = path ? this.opts.core.streams.get(path.stream) : undefined;
        if (path && streamEncrypted(stream)) {
          this.logOnce(`encrypted ${path.stream}`, `rtsp: stream ${path.stream} is end-to-end encrypted (share --encrypt): RTSP players cannot decrypt it, and get 415 (udpcast watch --encrypt plays it)`);
          return reply(415);
        }
        const sdp = describeStream(stream);
        if (!sdp) return reply(404);
        const base = req.uri.split('?')[0].replace(/\/?$/, '/');
        return reply(200, [['Content-Type', 'application/sdp'], ['Content-Base', base]], sdp);
      }
      case 'SETUP': {
        if (session?.record || (!session && conn.announced && trackOfUri(conn.announced.tracks, conn.announced.uri, req.uri))) return this.setupRecord(conn, req, session, now, reply);
        if (!this.authorized(req)) return reply(401, [['WWW-Authenticate', this.digest!.challenge()]]);
        if (!path || path.track === undefined || (path.track !== VIDEO_TRACK && path.track !== AUDIO_TRACK)) return reply(404);
        if (!this.opts.core.streams.get(path.stream)?.publisher) return reply(404);
        const transport = parseTransport(req.headers.get('transport'));
        if (!transport) return reply(461);
        let s = session;
        if (s && s.stream !== path.stream) return reply(459);
        if (s?.sink) return reply(455); // playing already: a new track would need a new session
        if (!s) {
          if (!this.roomForSession(conn)) return reply(453);
          s = { id: randomBytes(8).toString('hex'), stream: path.stream, conn, tracks: [], lastSeen: now, since: now };
          this.sessions.set(s.id, s);
          conn.sessions.add(s);
          this.counters.sessions++;
        }
        const kind = path.track === VIDEO_TRACK ? 'video' : 'audio';
        const track: Track = { kind, transport };
        for (const t of s.tracks) if (t.kind === kind && t.rtcpTo && this.byRtcpSource.get(endpointKey(t.rtcpTo)) === s) this.byRtcpSource.delete(endpointKey(t.rtcpTo));
        s.tracks = s.tracks.filter((t) => t.kind !== kind);
        s.tracks.push(track);
        let answer: string;
        if (transport.kind === 'udp') {
          track.rtpTo = { address: conn.remote.address, port: transport.rtpPort };
          track.rtcpTo = { address: conn.remote.address, port: transport.rtcpPort };
          this.byRtcpSource.set(endpointKey(track.rtcpTo), s);
          answer = `RTP/AVP;unicast;client_port=${transport.rtpPort}-${transport.rtcpPort};server_port=${this.rtp.address().port}-${this.rtcp.address().port}`;
        } else {
          answer = `RTP/AVP/TCP;unicast;interleaved=${transport.rtpChannel}-${transport.rtcpChannel}`;
        }
        return reply(200, [['Transport', answer], ['Session', `${s.id};timeout=${RTSP_SESSION_TIMEOUT_S}`]]);
      }
      case 'ANNOUNCE':
        return this.announce(conn, req, path, reply);
      case 'RECORD': {
        if (!session?.record) return reply(session ? 455 : 454);
        if (!this.publishAuthorized(req)) return reply(401, [['WWW-Authenticate', this.publishDigest!.challenge()]]);
        if (!session.record.recording) {
          const video = session.record.tracks.find((t) => t.kind === 'video' && t.payloadTypeOut !== undefined)!;
          if (!video.setUp) return reply(455); // sound alone would hold the name with no picture to show
          const r = this.opts.core.publishFrom(session.stream, `rtsp:${session.id}`, conn.remote, video.ssrcOut, now, () => undefined);
          if (r !== 'ok') {
            this.counters.publishRefused++;
            this.end(session, false);
            return reply(r === 'taken' ? 403 : 453);
          }
          session.record.recording = true;
          this.counters.published++;
        }
        return reply(200, [['Session', `${session.id};timeout=${RTSP_SESSION_TIMEOUT_S}`]]);
      }
      case 'PLAY': {
        if (!session || session.record) return reply(session ? 455 : 454);
        if (!session.sink) {
          const sink = this.sinkFor(session);
          if (!this.opts.core.attach(session.stream, sink, now)) {
            this.counters.sessionsRefused++;
            this.end(session, false);
            return reply(453);
          }
          session.sink = sink;
          // The SSRCs now, so the sender report a joiner is sent first reaches its track (a player
          // that gets its first report late moves its clock then: a step back in its times).
          const stream = this.opts.core.streams.get(session.stream);
          session.out = OutgoingStream.joining(stream, stream?.viewers.get(sink.id));
          session.libavformat = /^Lavf\d/.test(req.headers.get('user-agent') ?? '');
          this.opts.pump();
        }
        return reply(200, [['Session', `${session.id};timeout=${RTSP_SESSION_TIMEOUT_S}`], ['Range', 'npt=0.000-']]);
      }
      case 'TEARDOWN':
        if (!session) return reply(454);
        this.end(session, true);
        return reply(200);
      default:
        return reply(405, [['Allow', METHODS]]);
    }
  }

  /**
   * ANNOUNCE /STREAM with an SDP: a publisher says what it will RECORD (FFmpeg's RTSP output, OBS).
   * Refused: a stream name published already (403), an SDP that is not one (400), no picture in a
   * codec udpcast carries (415). Sound in another codec than Opus is left out, said once.
   */
  private announce(conn: Connection, req: RtspRequest, path: { stream: string; track?: number } | undefined, reply: Reply): void {
    if (!this.publishAuthorized(req)) return reply(401, [['WWW-Authenticate', this.publishDigest!.challenge()]]);
    if (!path || path.track !== undefined) return reply(404);
    const refuse = (status: number, why: string) => {
      this.counters.publishRefused++;
      this.logOnce(`${conn.remote.address} ${path.stream} ${status}`, `rtsp: refused to publish ${path.stream} from ${formatEndpoint(conn.remote)}: ${why}`);
      return reply(status);
    };
    if (this.opts.core.streams.get(path.stream)?.publisher) return refuse(403, 'the stream is published already');
    const announced = parseAnnounce(req.body.toString('utf8'));
    if (!announced) return refuse(400, 'its ANNOUNCE holds no SDP');
    const r = recordTracks(announced);
    if ('error' in r) return refuse(415, r.error);
    if (r.notCarried.length) this.logOnce(`${conn.remote.address} ${path.stream} left out`, `rtsp: ${path.stream}: left out ${r.notCarried.join(', ')} (udpcast carries H.264 or MJPEG pictures and Opus sound)`);
    conn.announced = { stream: path.stream, uri: req.uri, tracks: r.tracks };
    return reply(200);
  }

  /** A publisher's SETUP of an announced track: over UDP (it sends to our ports) or interleaved. */
  private setupRecord(conn: Connection, req: RtspRequest, session: Session | undefined, now: number, reply: Reply): void {
    if (!this.publishAuthorized(req)) return reply(401, [['WWW-Authenticate', this.publishDigest!.challenge()]]);
    const announced = session?.record ? { stream: session.stream, uri: session.record.uri, tracks: session.record.tracks } : conn.announced!;
    const track = trackOfUri(announced.tracks, announced.uri, req.uri);
    if (!track) return reply(404);
    if (session?.record?.recording) return reply(455);
    const transport = parseTransport(req.headers.get('transport'));
    if (!transport) return reply(461);
    // With --key, media only on the connection that proved it: UDP datagrams are taken by their
    // source address, which anyone can forge. FFmpeg (and OBS through it) falls back to TCP on 461.
    if (this.publishDigest && transport.kind === 'udp') return reply(461);
    let s = session;
    if (!s) {
      if (!this.roomForSession(conn)) return reply(453);
      s = { id: randomBytes(8).toString('hex'), stream: announced.stream, conn, tracks: [], lastSeen: now, since: now, record: { uri: announced.uri, tracks: announced.tracks, recording: false } };
      this.sessions.set(s.id, s);
      conn.sessions.add(s);
      conn.announced = undefined;
      this.counters.sessions++;
    }
    const kind = track.kind;
    const index = announced.tracks.indexOf(track);
    // A track set up again: what its earlier SETUP registered goes.
    for (const t of s.tracks) if (t.recordIndex === index) this.forgetRecordPorts(s, t);
    s.tracks = s.tracks.filter((t) => t.recordIndex !== index);
    s.tracks.push({ kind, transport, recordIndex: index });
    track.setUp = true;
    let answer: string;
    if (transport.kind === 'udp') {
      this.recordFrom.set(endpointKey({ address: conn.remote.address, port: transport.rtpPort }), { session: s, track, rtcp: false });
      this.recordFrom.set(endpointKey({ address: conn.remote.address, port: transport.rtcpPort }), { session: s, track, rtcp: true });
      answer = `RTP/AVP;unicast;client_port=${transport.rtpPort}-${transport.rtcpPort};server_port=${this.rtp.address().port}-${this.rtcp.address().port};mode=record`;
    } else {
      answer = `RTP/AVP/TCP;unicast;interleaved=${transport.rtpChannel}-${transport.rtcpChannel};mode=record`;
    }
    return reply(200, [['Transport', answer], ['Session', `${s.id};timeout=${RTSP_SESSION_TIMEOUT_S}`]]);
  }

  /** A publisher's UDP track of `s`: the ports its media came from are no longer its. */
  private forgetRecordPorts(s: Session, t: Track): void {
    if (t.transport.kind !== 'udp' || t.recordIndex === undefined) return;
    for (const port of [t.transport.rtpPort, t.transport.rtcpPort]) {
      const k = endpointKey({ address: s.conn.remote.address, port });
      if (this.recordFrom.get(k)?.session === s) this.recordFrom.delete(k);
    }
  }

  /** Below RTSP_MAX_SESSIONS, and RTSP_MAX_SESSIONS_PER_ADDRESS from this client's address; else counted. */
  private roomForSession(conn: Connection): boolean {
    const fromHere = [...this.sessions.values()].filter((x) => x.conn.remote.address === conn.remote.address).length;
    if (this.sessions.size < RTSP_MAX_SESSIONS && fromHere < RTSP_MAX_SESSIONS_PER_ADDRESS) return true;
    this.counters.sessionsRefused++;
    return false;
  }

  /** A packet of a publisher's track: made into udpcast's (record.ts) and handed to the relay. */
  private recorded(s: Session, track: RecordTrack, buf: Buffer, rtcp: boolean): void {
    if (!s.record?.recording) return;
    const now = this.now();
    s.lastSeen = now;
    const id = `rtsp:${s.id}`;
    if (rtcp) {
      const sr = recordRtcp(s.record.tracks, track, buf);
      if (sr) this.opts.send(this.opts.core.fromPublisher(id, sr, now));
      return;
    }
    const before = track.dropped;
    let packets: Buffer[] = [];
    try {
      packets = recordRtp(track, buf);
    } catch {
      // The UDP path has no other guard: whatever a datagram breaks here, it is dropped.
      track.dropped++;
    }
    for (const p of packets) this.opts.send(this.opts.core.fromPublisher(id, p, now));
    this.counters.recordDropped += track.dropped - before;
  }

  /** Logs `line` the first time `key` is seen: a client repeating a refused request does not flood the log (bounded like the relay's). */
  private logOnce(key: string, line: string): void {
    if (this.logged.has(key)) return;
    if (this.logged.size >= MAX_LOGGED) this.logged.clear();
    this.logged.add(key);
    this.opts.log?.(line);
  }

  /** With --key, a publisher's request must prove it (Digest); without, anyone may publish, as over UDP. */
  private publishAuthorized(req: RtspRequest): boolean {
    if (!this.publishDigest || this.publishDigest.check(req.headers.get('authorization'), req.method, req.uri)) return true;
    this.counters.unauthorized++;
    return false;
  }

  /** Without --watch-key, every request; with it, one whose Digest proves it. */
  private authorized(req: RtspRequest): boolean {
    if (!this.digest || this.digest.check(req.headers.get('authorization'), req.method, req.uri)) return true;
    this.counters.unauthorized++;
    return false;
  }

  /** The viewer the relay sees: each datagram sorted to its track. */
  private sinkFor(s: Session): DeliverySink {
    return {
      kind: 'rtsp',
      id: `rtsp:${s.id}`,
      endpoint: s.conn.remote,
      deliver: (data) => this.deliver(s, data),
      closed: () => this.end(s, false),
      soundAtOnce: true,
    };
  }

  private deliver(s: Session, data: Buffer): boolean {
    const out = s.out;
    if (!out) return true;
    if (isRtp(data)) {
      const pt = rtpPayloadType(data);
      if (isAudioPayloadType(pt)) {
        const track = s.tracks.find((t) => t.kind === 'audio');
        const opus = track && out.nextSound(data);
        return opus ? this.send(s, track, 'rtp', opus) : true;
      }
      const codec = codecOfPayloadType(pt);
      if (!codec) return true; // FEC and the like: a player does not read them
      const track = s.tracks.find((t) => t.kind === 'video');
      if (!track) return true;
      const sent = out.nextPicture(data, track.transport.kind === 'tcp');
      if (!sent) return true;
      const delivered = this.send(s, track, 'rtp', sent);
      const next = s.libavformat && codec.nextPictureDelimiter && out.pictureEnd(sent, codec.nextPictureDelimiter);
      if (next) this.send(s, track, 'rtp', next);
      return delivered;
    }
    if (!isRtcp(data)) return true;
    for (const r of out.reports(data)) {
      const track = s.tracks.find((t) => t.kind === r.kind);
      if (track) this.send(s, track, 'rtcp', r.data);
    }
    return true;
  }

  private send(s: Session, track: Track, what: 'rtp' | 'rtcp', data: Buffer): boolean {
    const t = track.transport;
    if (t.kind === 'udp') {
      const to = what === 'rtp' ? track.rtpTo! : track.rtcpTo!;
      (what === 'rtp' ? this.rtp : this.rtcp).send(data, to.port, to.address);
      return true;
    }
    const socket = s.conn.socket;
    if (socket.destroyed) return false;
    if (socket.writableLength > RTSP_TCP_QUEUE_BYTES) {
      this.counters.tcpDropped++;
      return false;
    }
    socket.write(interleaved(what === 'rtp' ? t.rtpChannel : t.rtcpChannel, data));
    return true;
  }

  /** A player's RTCP over UDP: its session is kept, and the relay reads it as any viewer's. */
  private onRtcp(buf: Buffer, from: Endpoint): void {
    const r = this.recordFrom.get(endpointKey(from));
    if (r?.rtcp) return this.recorded(r.session, r.track, buf, true);
    const s = this.byRtcpSource.get(endpointKey(from));
    if (!s?.sink) return;
    s.lastSeen = this.now();
    this.opts.send(this.opts.core.onViewerRtcp(s.sink.id, buf, s.lastSeen));
  }

  private onInterleaved(conn: Connection, channel: number, data: Buffer): void {
    for (const s of conn.sessions) {
      if (s.record) {
        for (const t of s.tracks) {
          if (t.transport.kind !== 'tcp' || t.recordIndex === undefined) continue;
          const rtcp = t.transport.rtcpChannel === channel;
          if (rtcp || t.transport.rtpChannel === channel) this.recorded(s, s.record.tracks[t.recordIndex], data, rtcp);
        }
        continue;
      }
      const track = s.tracks.find((t) => t.transport.kind === 'tcp' && t.transport.rtcpChannel === channel);
      if (!track || !s.sink) continue;
      s.lastSeen = this.now();
      this.opts.send(this.opts.core.onViewerRtcp(s.sink.id, data, s.lastSeen));
    }
  }

  /** Ends a session; `detach`: the relay is told (else it is the one that dropped the viewer). */
  private end(s: Session, detach: boolean): void {
    if (!this.sessions.delete(s.id)) return;
    s.conn.sessions.delete(s);
    for (const t of s.tracks) if (t.rtcpTo && this.byRtcpSource.get(endpointKey(t.rtcpTo)) === s) this.byRtcpSource.delete(endpointKey(t.rtcpTo));
    for (const t of s.tracks) this.forgetRecordPorts(s, t);
    if (s.record?.recording) this.opts.send(this.opts.core.unpublish(`rtsp:${s.id}`));
    if (detach && s.sink) this.opts.core.detach(s.stream, s.sink.id);
    s.sink = undefined;
  }

  private tick(): void {
    const now = this.now();
    for (const s of [...this.sessions.values()]) {
      if (s.record?.recording) {
        // The relay ends a stream whose publisher went silent (PUBLISHER_TIMEOUT_MS): so does its session.
        if (this.opts.core.streams.get(s.stream)?.publisher?.key !== `rtsp:${s.id}`) {
          this.counters.sessionTimeouts++;
          this.end(s, false);
          s.conn.socket.end();
        } else {
          // Each track's clock mapping again, as a udpcast share sends it every second: a publisher
          // such as FFmpeg reports every 5 s, and a viewer that joined between two reports could
          // not place the sound against the picture until the next (a recording starts without it).
          const srs = recordRtcp(s.record.tracks, undefined, undefined);
          if (srs) this.opts.send(this.opts.core.fromPublisher(`rtsp:${s.id}`, srs, now));
        }
      } else if (!s.sink && now - s.since > RTSP_PLAY_WAIT_MS) {
        this.counters.sessionTimeouts++;
        this.end(s, false);
      } else if (now - s.lastSeen > RTSP_SESSION_TIMEOUT_S * 1000) {
        this.counters.sessionTimeouts++;
        this.end(s, true);
      } else if (s.sink) {
        // The relay drops a viewer not heard from in VIEWER_TIMEOUT_MS: the session is its keepalive.
        this.opts.core.attach(s.stream, s.sink, now);
      }
    }
    for (const c of this.connections) {
      const idle = now - c.lastRequestAt;
      if ((c.partialSince !== undefined && now - c.partialSince > RTSP_IDLE_REQUEST_MS) || (c.sessions.size === 0 && idle > RTSP_SESSION_TIMEOUT_S * 1000)) {
        this.counters.connectionsDropped++;
        c.socket.destroy();
      }
    }
  }
}

/** `rtsp://host:port/STREAM[/trackID=N][?query]` → the stream and the track. */
export function rtspPath(uri: string): { stream: string; track?: number } | undefined {
  const m = /^rtsps?:\/\/[^/]+\/([^?#]*)/i.exec(uri);
  if (!m) return undefined;
  const parts = m[1].split('/').filter(Boolean).map(decodeUrlPart);
  if (parts.length === 0) return undefined;
  const last = /^trackID=(\d{1,3})$/.exec(parts.at(-1)!);
  if (last && parts.length > 1) return { stream: parts.slice(0, -1).join('/'), track: Number(last[1]) };
  return { stream: parts.join('/') };
}

/**
 * RTSP messages (RFC 2326 §6-7; RFC 7826 §8 where it is the same): the requests a player sends on
 * its TCP connection, the responses a server sends the relay when it pushes, and interleaved binary
 * data on either (RFC 2326 §10.12: '$', a channel byte, a 16-bit length, then that many bytes of
 * RTP or RTCP).
 *
 * Bounded (RtspSide): a message's head, its header lines and its body. What breaks a rule is a
 * `bad` item, after which the connection is not read further (its framing can no longer be trusted).
 */
import { RTSP_MAX_HEADERS, RTSP_MAX_REQUEST_BYTES, RTSP_PUSH_MAX_HEADERS, RTSP_PUSH_MAX_RESPONSE_BYTES } from '../../defaults.ts';

interface RtspMessage {
  /** Header names in lower case; a repeated header keeps its first value here... */
  headers: Map<string, string>;
  /** ...and every header line is here, in order (WWW-Authenticate may come once per scheme). */
  lines: Array<[string, string]>;
  body: Buffer;
}

export interface RtspRequest extends RtspMessage {
  method: string;
  uri: string;
}

export interface RtspResponse extends RtspMessage {
  status: number;
  reason: string;
}

export type RtspItem =
  | { kind: 'request'; request: RtspRequest }
  | { kind: 'response'; response: RtspResponse }
  | { kind: 'interleaved'; channel: number; data: Buffer }
  | { kind: 'bad'; why: string };

/**
 * Which end reads: the server (the relay's RTSP port) takes requests, within RTSP_MAX_REQUEST_BYTES
 * a head and a body and RTSP_MAX_HEADERS; a client (the relay pushing to a server, push.ts) takes
 * responses and the odd request a server may send, each at most RTSP_PUSH_MAX_RESPONSE_BYTES
 * in all with RTSP_PUSH_MAX_HEADERS.
 */
export type RtspSide = 'server' | 'client';

const LIMITS: Record<RtspSide, { head: number; body: number; message: number; headers: number }> = {
  server: { head: RTSP_MAX_REQUEST_BYTES, body: RTSP_MAX_REQUEST_BYTES, message: 2 * RTSP_MAX_REQUEST_BYTES, headers: RTSP_MAX_HEADERS },
  client: { head: RTSP_PUSH_MAX_RESPONSE_BYTES, body: RTSP_PUSH_MAX_RESPONSE_BYTES, message: RTSP_PUSH_MAX_RESPONSE_BYTES, headers: RTSP_PUSH_MAX_HEADERS },
};

const REQUEST_LINE = /^([A-Z_]{1,32}) (\S{1,2048}) RTSP\/(1\.0|2\.0)$/;
const STATUS_LINE = /^RTSP\/(?:1\.0|2\.0) (\d{3})(?: (.*))?$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):[ \t]*(.*)$/;

/** Splits a connection's bytes into messages and interleaved frames, as they complete. */
export class RtspReader {
  private buf: Buffer = Buffer.alloc(0);
  private failed = false;
  private readonly limits: { head: number; body: number; message: number; headers: number };

  constructor(private readonly side: RtspSide = 'server') {
    this.limits = LIMITS[side];
  }

  /** Bytes waiting for the rest of their message. */
  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): RtspItem[] {
    if (this.failed) return [];
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: RtspItem[] = [];
    for (;;) {
      const item = this.next();
      if (!item) break;
      out.push(item);
      if (item.kind === 'bad') {
        this.failed = true;
        this.buf = Buffer.alloc(0);
        break;
      }
    }
    return out;
  }

  private next(): RtspItem | undefined {
    const b = this.buf;
    if (b.length === 0) return undefined;
    if (b[0] === 0x24) {
      if (b.length < 4) return undefined;
      const length = b.readUInt16BE(2);
      if (b.length < 4 + length) return undefined;
      const data = Buffer.from(b.subarray(4, 4 + length));
      this.buf = b.subarray(4 + length);
      return { kind: 'interleaved', channel: b[1], data };
    }
    // Every message starts with a method or "RTSP/": other bytes are said at once, not at the cap.
    if (b[0] < 0x41 || b[0] > 0x5a) return { kind: 'bad', why: `a byte 0x${b[0].toString(16).padStart(2, '0')} where a message or '$' frame should start` };
    const { head, body: maxBody, message, headers: maxHeaders } = this.limits;
    const end = b.indexOf('\r\n\r\n');
    if (end < 0) return b.length > head ? { kind: 'bad', why: `a message head over ${head} bytes` } : undefined;
    if (end > head) return { kind: 'bad', why: `a message head over ${head} bytes` };
    const lines = b.subarray(0, end).toString('latin1').split('\r\n');
    const request = REQUEST_LINE.exec(lines[0]);
    const status = this.side === 'client' ? STATUS_LINE.exec(lines[0]) : null;
    if (!request && !status) return { kind: 'bad', why: this.side === 'server' ? 'not an RTSP request line' : 'neither a status line nor a request line' };
    if (lines.length - 1 > maxHeaders) return { kind: 'bad', why: `more than ${maxHeaders} headers` };
    const headers = new Map<string, string>();
    const all: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      const h = HEADER_LINE.exec(line);
      if (!h) return { kind: 'bad', why: 'a malformed header line' };
      const name = h[1].toLowerCase();
      const value = h[2].trim();
      all.push([name, value]);
      if (!headers.has(name)) headers.set(name, value);
    }
    const lengthText = headers.get('content-length') ?? '0';
    if (!/^\d{1,9}$/.test(lengthText)) return { kind: 'bad', why: 'a bad Content-Length' };
    const length = Number(lengthText);
    if (length > maxBody) return { kind: 'bad', why: `a body over ${maxBody} bytes` };
    if (end + 4 + length > message) return { kind: 'bad', why: `a message over ${message} bytes` };
    if (b.length < end + 4 + length) return undefined;
    const body = Buffer.from(b.subarray(end + 4, end + 4 + length));
    this.buf = b.subarray(end + 4 + length);
    const m = { headers, lines: all, body };
    if (status) return { kind: 'response', response: { ...m, status: Number(status[1]), reason: status[2] ?? '' } };
    return { kind: 'request', request: { ...m, method: request![1], uri: request![2] } };
  }
}

const REASONS: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  415: 'Unsupported Media Type',
  451: 'Parameter Not Understood',
  453: 'Not Enough Bandwidth',
  454: 'Session Not Found',
  455: 'Method Not Valid in This State',
  459: 'Aggregate Operation Not Allowed',
  461: 'Unsupported Transport',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

/** A response, CSeq echoed (RFC 2326 §12.17), with Content-Length when there is a body. */
export function rtspResponse(status: number, cseq: string | undefined, headers: Array<[string, string]> = [], body?: string): Buffer {
  const lines = [`RTSP/1.0 ${status} ${REASONS[status] ?? 'Error'}`];
  if (cseq !== undefined) lines.push(`CSeq: ${cseq}`);
  lines.push('Server: udpcast');
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  const payload = body === undefined ? '' : body;
  if (payload.length) lines.push(`Content-Length: ${Buffer.byteLength(payload)}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${payload}`, 'latin1');
}

/** One interleaved frame (RFC 2326 §10.12). */
export function interleaved(channel: number, data: Buffer): Buffer {
  const head = Buffer.allocUnsafe(4);
  head[0] = 0x24;
  head[1] = channel;
  head.writeUInt16BE(data.length, 2);
  return Buffer.concat([head, data]);
}

export type RtspTransport =
  | { kind: 'udp'; rtpPort: number; rtcpPort: number }
  | { kind: 'tcp'; rtpChannel: number; rtcpChannel: number };

/**
 * The first transport of a SETUP's Transport header this server can give (RFC 2326 §12.39):
 * RTP/AVP over UDP unicast with client_port, or RTP/AVP/TCP with interleaved channels.
 * Undefined when none is (multicast, another profile, bad ports).
 */
export function parseTransport(header: string | undefined): RtspTransport | undefined {
  if (!header) return undefined;
  for (const spec of header.split(',')) {
    const parts = spec.trim().split(';').map((p) => p.trim());
    const profile = parts[0].toUpperCase();
    const params = new Map(parts.slice(1).map((p) => {
      const at = p.indexOf('=');
      return at < 0 ? [p.toLowerCase(), ''] : [p.slice(0, at).toLowerCase(), p.slice(at + 1)];
    }));
    if (params.has('multicast')) continue;
    const range = (v: string | undefined, max: number): [number, number] | undefined => {
      const m = v ? /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v) : null;
      if (!m) return undefined;
      const a = Number(m[1]);
      const b = m[2] === undefined ? a + 1 : Number(m[2]);
      return a <= max && b <= max ? [a, b] : undefined;
    };
    if (profile === 'RTP/AVP' || profile === 'RTP/AVP/UDP') {
      const ports = range(params.get('client_port'), 65535);
      if (ports && ports[0] > 0 && ports[1] > 0) return { kind: 'udp', rtpPort: ports[0], rtcpPort: ports[1] };
    } else if (profile === 'RTP/AVP/TCP') {
      const channels = range(params.get('interleaved'), 255);
      if (channels) return { kind: 'tcp', rtpChannel: channels[0], rtcpChannel: channels[1] };
    }
  }
  return undefined;
}

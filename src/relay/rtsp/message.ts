/**
 * RTSP messages (RFC 2326 §6-7; RFC 7826 §8 where it is the same): the requests a player sends on
 * its TCP connection, and interleaved binary data on that same connection (RFC 2326 §10.12: '$',
 * a channel byte, a 16-bit length, then that many bytes of RTP or RTCP).
 *
 * Bounded: a request's head is at most RTSP_MAX_REQUEST_BYTES with at most RTSP_MAX_HEADERS
 * header lines, and a body at most as long. What breaks a rule is a `bad` item, after which the
 * connection is not read further (its framing can no longer be trusted).
 */
import { RTSP_MAX_HEADERS, RTSP_MAX_REQUEST_BYTES } from '../../defaults.ts';

export interface RtspRequest {
  method: string;
  uri: string;
  /** Header names in lower case; a repeated header keeps its first value. */
  headers: Map<string, string>;
  body: Buffer;
}

export type RtspItem =
  | { kind: 'request'; request: RtspRequest }
  | { kind: 'interleaved'; channel: number; data: Buffer }
  | { kind: 'bad'; why: string };

const REQUEST_LINE = /^([A-Z_]{1,32}) (\S{1,2048}) RTSP\/(1\.0|2\.0)$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):[ \t]*(.*)$/;

/** Splits a connection's bytes into requests and interleaved frames, as they complete. */
export class RtspReader {
  private buf: Buffer = Buffer.alloc(0);
  private failed = false;

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
    const end = b.indexOf('\r\n\r\n');
    if (end < 0) return b.length > RTSP_MAX_REQUEST_BYTES ? { kind: 'bad', why: `a request head over ${RTSP_MAX_REQUEST_BYTES} bytes` } : undefined;
    if (end > RTSP_MAX_REQUEST_BYTES) return { kind: 'bad', why: `a request head over ${RTSP_MAX_REQUEST_BYTES} bytes` };
    const lines = b.subarray(0, end).toString('latin1').split('\r\n');
    const first = REQUEST_LINE.exec(lines[0]);
    if (!first) return { kind: 'bad', why: 'not an RTSP request line' };
    if (lines.length - 1 > RTSP_MAX_HEADERS) return { kind: 'bad', why: `more than ${RTSP_MAX_HEADERS} headers` };
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const h = HEADER_LINE.exec(line);
      if (!h) return { kind: 'bad', why: 'a malformed header line' };
      const name = h[1].toLowerCase();
      if (!headers.has(name)) headers.set(name, h[2].trim());
    }
    const lengthText = headers.get('content-length') ?? '0';
    if (!/^\d{1,6}$/.test(lengthText)) return { kind: 'bad', why: 'a bad Content-Length' };
    const length = Number(lengthText);
    if (length > RTSP_MAX_REQUEST_BYTES) return { kind: 'bad', why: `a body over ${RTSP_MAX_REQUEST_BYTES} bytes` };
    if (b.length < end + 4 + length) return undefined;
    const body = Buffer.from(b.subarray(end + 4, end + 4 + length));
    this.buf = b.subarray(end + 4 + length);
    return { kind: 'request', request: { method: first[1], uri: first[2], headers, body } };
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

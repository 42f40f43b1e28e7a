/**
 * Addresses, as every part of udpcast names them: where a datagram comes from or goes to
 * (Endpoint), what a person typed (HostPort, or a URL in its place: TypedUrl), and the one DNS
 * look-up watch and share make.
 */
import { lookup } from 'node:dns/promises';
import dgram from 'node:dgram';
import type { Server } from 'node:net';
import { UsageError } from './errors.ts';

/** A UDP address: where a datagram came from or goes to. */
export interface Endpoint {
  address: string;
  port: number;
}

/** HOST:PORT as a person typed it (the host not yet resolved). */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * A URL given where a command takes HOST[:PORT]: udpcast prints rtsp:// and http:// URLs
 * (rtsp://HOST:8554/main, http://HOST:8080/?token=KEY), and a person pastes them back. Parts as
 * typed: the port is not checked here.
 */
export interface TypedUrl {
  /** In lower case, without "://". */
  scheme: string;
  host: string;
  /** undefined when the URL has none. */
  port?: string;
  /** From the first '/' (percent-escapes kept), '' when there is none. */
  path: string;
  query: URLSearchParams;
  /** USER:PASSWORD@'s password, percent-decoded. */
  password?: string;
}

/** The ports a URL without one means (RFC 2326 §3.2, RFC 9110 §4.2.1). */
export const URL_DEFAULT_PORTS: Readonly<Record<string, number>> = { rtsp: 554, http: 80 };

/** SCHEME://[USER[:PASSWORD]@]HOST[:PORT][/PATH][?QUERY]; HOST may be [v6]. */
const URL_RE = /^([a-z][a-z0-9+.-]*):\/\/(?:[^@/?#]*?(?::([^@/?#]*))?@)?(\[[^\]]*\]|[^:/?#]*)(?::([^/?#]*))?([^?#]*)(?:\?([^#]*))?/i;

/** A part of a URL (a path segment, a password) percent-decoded; as typed when it is no valid escape ("100%"). */
export function decodeUrlPart(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * `text` as a URL, or undefined when it is not one (HOST, HOST:PORT, [v6]:PORT, a bare IPv6
 * address): recognized by its SCHEME://, so every command can say what a URL is for.
 */
export function typedUrl(text: string): TypedUrl | undefined {
  const m = URL_RE.exec(text.trim());
  if (!m) return undefined;
  return {
    scheme: m[1].toLowerCase(),
    host: m[3].replace(/^\[(.*)\]$/, '$1'),
    port: m[4],
    path: m[5],
    query: new URLSearchParams(m[6] ?? ''),
    password: m[2] === undefined ? undefined : decodeUrlPart(m[2]),
  };
}

/** `host` resolved once; a name that does not resolve is the person's error, said in one line. */
export async function resolveHost(host: string): Promise<{ address: string; family: 4 | 6 }> {
  try {
    const r = await lookup(host);
    return { address: r.address, family: r.family === 6 ? 6 : 4 };
  } catch {
    throw new UsageError(`cannot resolve host ${JSON.stringify(host)}: check the name or use an IP address`);
  }
}

/** `address:port`, with an IPv6 address in brackets. */
export function formatEndpoint(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/**
 * Kernel buffers asked for on a busy UDP socket: a keyframe burst, or a moment the process is
 * not scheduled, must not overflow them (Linux's default is about 208 KiB, 150 full datagrams).
 * The kernel caps the request at net.core.rmem_max / wmem_max.
 */
export const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** Asks for SOCKET_BUFFER_BYTES each way on a bound socket; where the kernel refuses, its defaults still work. */
export function widenBuffers(s: dgram.Socket): void {
  try {
    s.setRecvBufferSize(SOCKET_BUFFER_BYTES);
    s.setSendBufferSize(SOCKET_BUFFER_BYTES);
  } catch {
    // Not bound yet, or a kernel that refuses the size: the defaults stay.
  }
}

/** Listens on HOST:PORT; rejects with the bind's error (EADDRINUSE...), which the caller words for a person. */
export function listenTcp(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Two UDP sockets for one RTP session: RTP on a free port, RTCP on the next one where it is free
 * (RFC 3550 §11), else anywhere (the RTSP SETUP says which). On `host`, or every address.
 */
export async function bindRtpPair(type: 'udp4' | 'udp6', host?: string): Promise<{ rtp: dgram.Socket; rtcp: dgram.Socket }> {
  const bind = (port: number) =>
    new Promise<dgram.Socket>((resolve, reject) => {
      const s = dgram.createSocket(type);
      s.once('error', (err) => {
        s.close();
        reject(err);
      });
      s.bind(port, host, () => {
        s.removeAllListeners('error');
        resolve(s);
      });
    });
  const rtp = await bind(0);
  const rtcp = await bind(rtp.address().port + 1).catch(() => bind(0));
  return { rtp, rtcp };
}

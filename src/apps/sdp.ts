/**
 * `udpcast sdp HOST[:PORT] [--stream NAME]`, or the URL a relay prints,
 * `udpcast sdp rtsp://[USER:KEY@]HOST[:PORT]/STREAM`: the session description of a stream, as the
 * relay's RTSP server gives it (DESCRIBE, RFC 2326 §10.2), on stdout: for a player or a tool that
 * takes SDP, or to see what a stream carries (codec, size parameters, sound).
 */
import net from 'node:net';
import { DEFAULT_STREAM, RTSP_PORT_DEFAULT } from '../defaults.ts';
import { UsageError } from '../util/errors.ts';
import { checkStream, parseHostPort, readSecret, urlHost, urlStream, type TargetForm } from './options.ts';
import { digestAnswer } from '../relay/rtsp/digest.ts';
import { redactUrl } from '../relay/rtsp/push.ts';
import { STREAM_NAME_RE } from '../transport/control.ts';
import { formatEndpoint } from '../util/net.ts';

/** How long the relay has to answer. */
const SDP_TIMEOUT_MS = 5000;
/** The answer, head and SDP, at most this long. */
const SDP_MAX_BYTES = 64 * 1024;

/** One RTSP request on a connection of its own: the answer's text (head and body). */
async function ask(host: string, port: number, at: string, request: string, timeoutMs: number): Promise<string> {
  const socket = net.connect(port, host);
  try {
    return await new Promise<string>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const timer = setTimeout(() => reject(new Error(`no answer from ${at} in ${timeoutMs / 1000} s: is it a udpcast relay's RTSP port (--rtsp-port, default ${RTSP_PORT_DEFAULT})?`)), timeoutMs);
      socket.on('connect', () => socket.write(request));
      socket.on('data', (d) => {
        got = Buffer.concat([got, d]);
        const head = got.indexOf('\r\n\r\n');
        const length = Number(/\r\nContent-Length:\s*(\d+)/i.exec(got.toString('latin1'))?.[1] ?? 0);
        if ((head >= 0 && got.length >= head + 4 + length) || got.length > SDP_MAX_BYTES) {
          clearTimeout(timer);
          resolve(got.subarray(0, Math.min(got.length, SDP_MAX_BYTES)).toString('utf8'));
        }
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND' || err.code === 'EHOSTUNREACH'
          ? new (err.code === 'ENOTFOUND' ? UsageError : Error)(`no RTSP server at ${at} (${err.code}): is the relay running, with --rtsp-port ${port}?`)
          : err);
      });
      socket.on('close', () => {
        clearTimeout(timer);
        reject(new Error(`${at} closed the connection without an answer: is it a udpcast relay's RTSP port?`));
      });
    });
  } finally {
    socket.destroy();
  }
}

export async function fetchSdp(host: string, port: number, stream: string, watchKey?: string, timeoutMs = SDP_TIMEOUT_MS): Promise<string> {
  const at = formatEndpoint({ address: host, port });
  const url = `rtsp://${at}/${encodeURIComponent(stream)}`;
  const describe = (auth?: string) =>
    `DESCRIBE ${url} RTSP/1.0\r\nCSeq: ${auth ? 2 : 1}\r\nAccept: application/sdp\r\nUser-Agent: udpcast\r\n${auth ? `Authorization: ${auth}\r\n` : ''}\r\n`;
  let text = await ask(host, port, at, describe(), timeoutMs);
  const status = () => /^RTSP\/\d\.\d (\d{3})/.exec(text)?.[1];
  const challenge = /\r\nWWW-Authenticate:\s*(Digest [^\r\n]*)/i.exec(text)?.[1];
  if (status() === '401' && challenge && watchKey !== undefined) text = await ask(host, port, at, describe(digestAnswer(challenge, 'DESCRIBE', url, watchKey)), timeoutMs);
  if (status() === '404') throw new Error(`${at} has no stream "${stream}" now (is its sharer running? --stream names another)`);
  if (status() === '401') throw new UsageError(watchKey === undefined ? `${at} asks for the relay's --watch-key: give it with --watch-key or --watch-key-file` : `${at} refused our --watch-key`);
  if (status() !== '200') throw new Error(`${at} answered ${status() ? `RTSP ${status()}` : 'something that is not RTSP'}`);
  return text.slice(text.indexOf('\r\n\r\n') + 4);
}

/** sdp's target: the relay's RTSP server, as HOST[:PORT] or its rtsp:// URL. */
const SDP_TARGET: TargetForm = {
  scheme: 'rtsp',
  instead: (u) => `sdp asks the relay's RTSP server: udpcast sdp rtsp://${urlHost(u)}:${RTSP_PORT_DEFAULT}/${urlStream(u) ?? 'STREAM'} (or ${urlHost(u)}:${RTSP_PORT_DEFAULT} --stream NAME)`,
};

/**
 * The stream and the --watch-key from the target's URL (rtsp://viewer:KEY@HOST:PORT/STREAM), unless
 * --stream or --watch-key[-file] say otherwise: the options win.
 */
export async function printSdp(a: Record<string, unknown>): Promise<{ done: Promise<number>; stop(): void }> {
  const target = parseHostPort('target', String(a.target ?? ''), RTSP_PORT_DEFAULT, SDP_TARGET);
  const inUrl = target.url ? urlStream(target.url) : undefined;
  if (a.stream === undefined && inUrl !== undefined && !STREAM_NAME_RE.test(inUrl)) {
    throw new UsageError(`the path of ${redactUrl(String(a.target))} must be a stream name (1-64 letters, digits, '.', '_' or '-'), got ${JSON.stringify(inUrl)}`);
  }
  const stream = checkStream(a.stream ?? inUrl ?? DEFAULT_STREAM);
  const watchKey = readSecret('watch-key', a.watchKey, a.watchKeyFile) ?? target.url?.password;
  process.stdout.write(await fetchSdp(target.host, target.port, stream, watchKey));
  return { done: Promise.resolve(0), stop: () => {} };
}

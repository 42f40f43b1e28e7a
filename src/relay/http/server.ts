/**
 * The relay's HTTP server (`--http PORT`): what it carries, for a person and for tools.
 *
 *   GET /streams.json   the live streams: name, codec, size, sound, viewers, bitrate
 *   GET /metrics        Prometheus text (prom-client): the relay's --stats-json figures
 *
 * Each route answers from the relay's newest snapshot (the one --stats-json writes), so a scrape
 * and a stats line agree. With --watch-key, every request must carry it (`Authorization: Bearer
 * KEY` or `?token=KEY`), compared in constant time and never logged.
 *
 * Bounded (defaults.ts HTTP_*): connections, a request's head, the time to send it, no request
 * bodies; only GET and HEAD. Nothing a client sends throws here.
 */
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import { listenTcp } from '../../util/net.ts';
import { HTTP_HEADERS_TIMEOUT_MS, HTTP_KEEPALIVE_TIMEOUT_MS, HTTP_MAX_CONNECTIONS, HTTP_MAX_HEADER_BYTES, HTTP_REQUEST_TIMEOUT_MS } from '../../defaults.ts';

/** One route's answer. */
export interface HttpAnswer {
  type: string;
  body: string;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  /** Path → its answer, made at each request. */
  routes: Record<string, () => HttpAnswer | Promise<HttpAnswer>>;
  /** The relay's --watch-key: a request must carry it. */
  token?: string;
  log?: (line: string) => void;
}

export interface HttpCounters {
  requests: number;
  /** Answered 4xx: no such path, another method, a body, no or a wrong token. */
  refused: number;
  unauthorized: number;
}

export class HttpServer {
  readonly counters: HttpCounters = { requests: 0, refused: 0, unauthorized: 0 };
  private readonly tokenHash?: Buffer;

  private constructor(
    private readonly server: http.Server,
    private readonly opts: HttpServerOptions,
  ) {
    if (opts.token !== undefined) this.tokenHash = sha256(opts.token);
    server.on('request', (req, res) => {
      this.answer(req, res).catch(() => {
        // A route that failed: the client gets a 500, the relay goes on.
        if (!res.headersSent) this.send(res, 500, 'text/plain', 'internal error\n');
        else res.destroy();
      });
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // What node's parser refused before a request existed: garbage, or a head over the limit.
      this.counters.refused++;
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
      else socket.destroy();
    });
  }

  static async start(opts: HttpServerOptions): Promise<HttpServer> {
    const server = http.createServer({ maxHeaderSize: HTTP_MAX_HEADER_BYTES, headersTimeout: HTTP_HEADERS_TIMEOUT_MS, requestTimeout: HTTP_REQUEST_TIMEOUT_MS });
    server.keepAliveTimeout = HTTP_KEEPALIVE_TIMEOUT_MS;
    server.maxConnections = HTTP_MAX_CONNECTIONS;
    await listenTcp(server, opts.port, opts.host);
    server.on('error', (err) => opts.log?.(`http: ${err.message}`));
    return new HttpServer(server, opts);
  }

  get port(): number {
    return (this.server.address() as import('node:net').AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.counters.requests++;
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://relay');
    } catch {
      return this.refuse(res, 400, 'bad request\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.refuse(res, 405, 'only GET and HEAD\n', [['Allow', 'GET, HEAD']]);
    // No route takes a body: one announced is refused before it is read.
    if (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding']) return this.refuse(res, 413, 'no request bodies here\n');
    if (!this.authorized(req, url)) {
      this.counters.unauthorized++;
      return this.refuse(res, 401, 'this relay needs its --watch-key: Authorization: Bearer KEY, or ?token=KEY\n', [['WWW-Authenticate', 'Bearer realm="udpcast"']]);
    }
    const route = this.opts.routes[url.pathname];
    if (!route) return this.refuse(res, 404, `no ${url.pathname} here: ${Object.keys(this.opts.routes).join(', ')}\n`);
    const a = await route();
    this.send(res, 200, a.type, req.method === 'HEAD' ? '' : a.body, [], Buffer.byteLength(a.body));
  }

  private authorized(req: http.IncomingMessage, url: URL): boolean {
    if (!this.tokenHash) return true;
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const given = bearer ?? url.searchParams.get('token');
    // Hashes of both: equal lengths for the constant-time comparison, whatever was sent.
    return given !== null && timingSafeEqual(sha256(given), this.tokenHash);
  }

  private refuse(res: http.ServerResponse, status: number, text: string, headers: Array<[string, string]> = []): void {
    this.counters.refused++;
    this.send(res, status, 'text/plain; charset=utf-8', text, headers);
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string, headers: Array<[string, string]> = [], length = Buffer.byteLength(body)): void {
    res.writeHead(status, [['Content-Type', type], ['Content-Length', String(length)], ['Cache-Control', 'no-store'], ...headers].flat());
    res.end(body);
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * The relay's HTTP server (`--http PORT`): what it carries, for a person and for tools.
 *
 *   GET /streams.json   the live streams: name, codec, size, sound, viewers, bitrate
 *   GET /metrics        Prometheus text (prom-client): the relay's --stats-json figures
 *   and the routes a caller adds (apps/relay.ts: the pages, WHEP).
 *
 * The figures answer from the relay's newest snapshot (the one --stats-json writes), so a scrape
 * and a stats line agree. With --watch-key, every request must carry it (`Authorization: Bearer
 * KEY` or `?token=KEY`), compared in constant time and never logged; a CORS preflight (OPTIONS)
 * carries none and is answered for all on a route open to other pages (WHEP), so a player elsewhere can ask.
 *
 * Bounded (defaults.ts HTTP_*): connections, a request's head, the time to send it, a body only to
 * a route that takes one and at most HTTP_MAX_BODY_BYTES. Nothing a client sends throws here.
 */
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import { listenTcp, type Endpoint } from '../../util/net.ts';
import { HTTP_HEADERS_TIMEOUT_MS, HTTP_KEEPALIVE_TIMEOUT_MS, HTTP_MAX_BODY_BYTES, HTTP_MAX_CONNECTIONS, HTTP_MAX_HEADER_BYTES, HTTP_REQUEST_TIMEOUT_MS } from '../../defaults.ts';

/** One route's answer. */
export interface HttpAnswer {
  type: string;
  body: string;
}

/** A request as a route with methods of its own sees it. */
export interface HttpRequest {
  method: string;
  url: URL;
  /** The path after the route's prefix, percent-decoded ('' for the prefix itself). */
  rest: string;
  headers: http.IncomingHttpHeaders;
  /** The body, at most HTTP_MAX_BODY_BYTES; empty for a route that takes none. */
  body: Buffer;
  remote: Endpoint;
}

export interface HttpReply {
  status: number;
  type?: string;
  body?: string;
  headers?: Array<[string, string]>;
}

/** A route with its own methods: every path under `prefix` (which ends in '/'). */
export interface HttpRoute {
  prefix: string;
  methods: readonly string[];
  /** The methods of these that carry a body (POST, PATCH). */
  withBody?: readonly string[];
  /** Open to scripts of other pages (CORS, with its preflight): a WHEP player elsewhere. */
  cors?: boolean;
  handle(req: HttpRequest): HttpReply | Promise<HttpReply>;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  /** Path → its answer to GET and HEAD, made at each request. */
  routes: Record<string, () => HttpAnswer | Promise<HttpAnswer>>;
  /** Routes under a prefix, with methods of their own. */
  prefixed?: readonly HttpRoute[];
  /** The relay's --watch-key: a request must carry it. */
  token?: string;
  log?: (line: string) => void;
}

export interface HttpCounters {
  requests: number;
  /** Answered 4xx: no such path, another method, a body too big or not wanted, no or a wrong token. */
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
    const method = req.method ?? '';
    const exact = Object.hasOwn(this.opts.routes, url.pathname) ? this.opts.routes[url.pathname] : undefined;
    const route = exact ? undefined : this.opts.prefixed?.find((r) => url.pathname.startsWith(r.prefix) || url.pathname === r.prefix.slice(0, -1));
    const methods = route ? route.methods : ['GET', 'HEAD'];
    // A preflight carries no credentials: answered for every origin on the routes open to them, the token is checked on the request itself.
    if (method === 'OPTIONS' && route?.cors) {
      return this.send(res, 204, 'text/plain', '', [...CORS, ['Access-Control-Allow-Methods', [...methods, 'OPTIONS'].join(', ')], ['Access-Control-Allow-Headers', 'Authorization, Content-Type'], ['Access-Control-Max-Age', '600']]);
    }
    if (!methods.includes(method)) return this.refuse(res, 405, `${url.pathname}: ${methods.join(', ')}\n`, [['Allow', methods.join(', ')]]);
    const length = Number(req.headers['content-length'] ?? 0);
    const takesBody = route?.withBody?.includes(method) ?? false;
    // A body where none is taken, or one over the limit, is refused before it is read.
    if ((!takesBody && (length > 0 || req.headers['transfer-encoding'])) || !(length <= HTTP_MAX_BODY_BYTES)) {
      return this.refuse(res, 413, takesBody ? `at most ${HTTP_MAX_BODY_BYTES} bytes\n` : 'no request body here\n', [['Connection', 'close']]);
    }
    if (!this.authorized(req, url)) {
      this.counters.unauthorized++;
      return this.refuse(res, 401, 'this relay needs its --watch-key: Authorization: Bearer KEY, or ?token=KEY\n', [['WWW-Authenticate', 'Bearer realm="udpcast"']]);
    }
    if (exact) {
      const a = await exact();
      return this.send(res, 200, a.type, method === 'HEAD' ? '' : a.body, [], Buffer.byteLength(a.body));
    }
    if (!route) return this.refuse(res, 404, `no ${url.pathname} here: ${[...Object.keys(this.opts.routes), ...(this.opts.prefixed ?? []).map((r) => r.prefix)].join(', ')}\n`);
    const body = takesBody ? await readBody(req) : Buffer.alloc(0);
    if (!body) return this.refuse(res, 413, `at most ${HTTP_MAX_BODY_BYTES} bytes\n`, [['Connection', 'close']]);
    let rest: string;
    try {
      rest = decodeURIComponent(url.pathname.slice(route.prefix.length));
    } catch {
      return this.refuse(res, 400, 'bad path\n');
    }
    const remote = { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0 };
    const r = await route.handle({ method, url, rest, headers: req.headers, body, remote });
    if (r.status >= 400) this.counters.refused++;
    const text = r.body ?? '';
    this.send(res, r.status, r.type ?? 'text/plain; charset=utf-8', method === 'HEAD' ? '' : text, [...(route.cors ? CORS : []), ...(r.headers ?? [])], Buffer.byteLength(text));
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

/** What a route open to other pages' scripts says (its Location is what a WHEP player reads). */
const CORS: Array<[string, string]> = [['Access-Control-Allow-Origin', '*'], ['Access-Control-Expose-Headers', 'Location']];

/** The body of a request, or undefined once it passes HTTP_MAX_BODY_BYTES (chunked bodies give no length first). */
function readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > HTTP_MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
      } else parts.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', () => resolve(undefined));
  });
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * HTTP Digest authentication as RTSP uses it (RFC 2326 §D.2.2 → RFC 2617 §3, MD5, with or without
 * qop=auth): the relay's --watch-key is the password, any user name. Players take it in the URL
 * (`rtsp://viewer:PASSPHRASE@relay:8554/main`: FFmpeg, VLC, GStreamer) and never send it as it is.
 *
 * Nonces are not stored: each is a time and an HMAC of it under a secret drawn at start, so any
 * nonce this relay issued in the last DIGEST_NONCE_MS is good and nothing grows per request. (A
 * replayed response within that time is accepted, as without qop's counters; the session it
 * would open still plays only what the password already allows.)
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const DIGEST_REALM = 'udpcast';
/** A nonce is good this long after it was issued. */
export const DIGEST_NONCE_MS = 5 * 60_000;

const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');

export class DigestAuth {
  private readonly secret = randomBytes(32);

  constructor(
    private readonly password: string,
    private readonly now: () => number = Date.now,
    /** One per password: a client does not offer one's credentials to the other's challenge. */
    private readonly realm = DIGEST_REALM,
  ) {}

  /** The WWW-Authenticate value of a 401. */
  challenge(): string {
    return `Digest realm="${this.realm}", nonce="${this.nonce(this.now())}", algorithm=MD5, qop="auth"`;
  }

  /**
   * Whether an Authorization header proves the password for `method` on `requestUri` (its `uri`
   * must name the request's, whole or as its path: RFC 2617 §3.2.2.5).
   */
  check(header: string | undefined, method: string, requestUri: string): boolean {
    if (!header || !/^Digest\s/i.test(header)) return false;
    const p = parseParams(header.replace(/^Digest\s+/i, ''));
    const { username, realm, nonce, uri, response } = p;
    // The response is 32 hex digits or nothing: other bytes (a header is read as latin1) would
    // make the comparison below compare buffers of two lengths.
    if (username === undefined || realm !== this.realm || !nonce || !uri || !response || !/^[0-9a-f]{32}$/i.test(response)) return false;
    if (uri !== requestUri && uri !== requestUri.replace(/^rtsps?:\/\/[^/]*/i, '')) return false;
    if (!this.fresh(nonce)) return false;
    if (p.algorithm && p.algorithm.toUpperCase() !== 'MD5') return false;
    const ha1 = md5(`${username}:${this.realm}:${this.password}`);
    const ha2 = md5(`${method}:${uri}`);
    const want =
      p.qop === undefined
        ? md5(`${ha1}:${nonce}:${ha2}`)
        : p.qop === 'auth' && p.nc && p.cnonce
          ? md5(`${ha1}:${nonce}:${p.nc}:${p.cnonce}:auth:${ha2}`)
          : undefined;
    if (!want) return false;
    return timingSafeEqual(Buffer.from(response.toLowerCase()), Buffer.from(want));
  }

  private nonce(at: number): string {
    const t = at.toString(16);
    return `${t}.${createHmac('sha256', this.secret).update(t).digest('hex').slice(0, 32)}`;
  }

  private fresh(nonce: string): boolean {
    const m = /^([0-9a-f]{1,13})\.[0-9a-f]{32}$/.exec(nonce);
    if (!m) return false;
    const at = parseInt(m[1], 16);
    const age = this.now() - at;
    if (age < 0 || age > DIGEST_NONCE_MS) return false;
    return timingSafeEqual(Buffer.from(nonce), Buffer.from(this.nonce(at)));
  }
}

/** `a="b", c=d` → {a: 'b', c: 'd'} (RFC 2617 §3.2.2's auth-param list); names in lower case. */
export function parseParams(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)/gy;
  for (let m = re.exec(text); m && m[0].length > 0; m = re.exec(text)) {
    const name = m[1].toLowerCase();
    if (!(name in out)) out[name] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
  }
  return out;
}

/** The Authorization header answering a Digest challenge (RFC 2617 §3.2.2), as any RTSP player would (udpcast sdp's half). */
export function digestAnswer(challenge: string, method: string, uri: string, password: string, user = 'viewer'): string {
  const p = parseParams(challenge.replace(/^Digest\s+/i, ''));
  const ha1 = md5(`${user}:${p.realm}:${password}`);
  const ha2 = md5(`${method}:${uri}`);
  const base = `Digest username="${user}", realm="${p.realm}", nonce="${p.nonce}", uri="${uri}"`;
  if (!/\bauth\b/.test(p.qop ?? '')) return `${base}, response="${md5(`${ha1}:${p.nonce}:${ha2}`)}"`;
  const cnonce = randomBytes(8).toString('hex');
  return `${base}, qop=auth, nc=00000001, cnonce="${cnonce}", response="${md5(`${ha1}:${p.nonce}:00000001:${cnonce}:auth:${ha2}`)}"`;
}

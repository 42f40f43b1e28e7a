/**
 * Stateless address proof for the relay, so it cannot be used to flood a forged address: a viewer's
 * first SUBSCRIBE gets only a CHALLENGE (never larger than the SUBSCRIBE) carrying a cookie, an
 * HMAC over the claimed address and port; only a SUBSCRIBE that echoes a valid cookie from that
 * same address creates a subscription. The relay keeps no state for unproven peers: the cookie
 * verifies against the current or the previous secret, and the secret rotates every
 * COOKIE_ROTATE_MS, so a cookie lives one to two rotation periods. (The idea is DTLS's
 * HelloVerifyRequest, RFC 6347 §4.2.1, and QUIC's Retry token, RFC 9000 §8.1.)
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { COOKIE_BYTES } from '../transport/control.ts';
import type { Endpoint } from '../util/net.ts';

/** Secret lifetime: a cookie is accepted for 30-60 s after it was issued. */
export const COOKIE_ROTATE_MS = 30_000;

export class CookieJar {
  private current = randomBytes(32);
  private previous = randomBytes(32);
  private rotatedAt: number;

  constructor(now: number) {
    this.rotatedAt = now;
  }

  /** Rotates the secret when its time is up (called from the relay's tick). */
  tick(now: number): void {
    if (now - this.rotatedAt < COOKIE_ROTATE_MS) return;
    this.previous = this.current;
    this.current = randomBytes(32);
    this.rotatedAt = now;
  }

  issue(from: Endpoint): Buffer {
    return mac(this.current, from);
  }

  verify(from: Endpoint, cookie: Buffer | undefined): boolean {
    if (!cookie || cookie.length !== COOKIE_BYTES) return false;
    return timingSafeEqual(cookie, mac(this.current, from)) || timingSafeEqual(cookie, mac(this.previous, from));
  }
}

function mac(secret: Buffer, from: Endpoint): Buffer {
  return createHmac('sha256', secret).update(`${from.address}|${from.port}`).digest().subarray(0, COOKIE_BYTES);
}

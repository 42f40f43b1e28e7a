/**
 * Who may use the relay and how often, decided before anything is stored for a peer. A relay on a
 * public address gets forged source addresses, floods and strangers' PUBLISHes; the rules:
 * - a viewer proves it receives at the address it claims by echoing a cookie (cookie.ts), and
 *   with --watch-key that it knows the key;
 * - with --key a publisher signs every datagram; a signed PUBLISH from an address not yet latched
 *   is checked with the keys of the salt it announces;
 * - replies to unproven addresses (CHALLENGE, REFUSED) are rate limited per hashed address and a
 *   CHALLENGE is never larger than its request, so a forged source gets no amplification;
 * - a known viewer's keepalives have a budget of their own.
 */
import { ControlType, RELAY_SSRC, RefuseReason, controlApp, parseControl, type ControlMessage, type SubscribeMessage } from '../transport/control.ts';
import { serializeRtcp, parseRtcp } from '../transport/rtcp.ts';
import { AUTH_TRAILER_BYTES, ReplayGuard, streamKeys, verifyAuthTag, verifyWatchProof, type AuthKeys, type MasterKey } from '../transport/secure.ts';
import { PacketError } from '../util/errors.ts';
import type { Endpoint } from '../util/net.ts';
import { TokenBucket, TokenBucketTable } from '../util/token-bucket.ts';
import { CookieJar } from './cookie.ts';
import type { RelayCounters } from './counters.ts';

/** A viewer keepalives once a second; this leaves room for retries and bursts, not floods. */
const KEEPALIVES_PER_SECOND = 10;
const KEEPALIVE_BURST = 10;
/** Challenges per hashed address per second, over this many buckets (a fixed 64 KB). */
const UNPROVEN_PER_SECOND = 10;
const UNPROVEN_BUCKETS = 4096;

export { RELAY_SSRC };

export interface AdmissionOptions {
  /** Master key from --key (deriveMasterKey): publishers must authenticate every datagram. */
  key?: MasterKey;
  /** From --watch-key (deriveWatchKey): viewers must prove it in their SUBSCRIBE. */
  watchKey?: Buffer;
}

/** A keyed publisher's verification state, kept while it is latched. */
export interface PublisherAuth {
  keys: AuthKeys;
  guard: ReplayGuard;
}

/** How a publisher datagram was authenticated before it reached the RTCP handler. */
export type Authenticated = (PublisherAuth & { salt: Buffer }) | 'latched' | undefined;

/** What a datagram that did not parse as RTCP turned out to be (signedPublish). */
export type SignedPublish =
  | { ok: true; packet: Buffer; auth: PublisherAuth & { salt: Buffer } }
  | { ok: false; stream: string; reason: RefuseReason }
  | undefined;

/** A relay-originated control message (ACK, CHALLENGE, REFUSED, ENDED). */
export function relayControl(msg: ControlMessage): Buffer {
  return serializeRtcp([controlApp(msg, RELAY_SSRC)]);
}

/** A viewer's keepalive budget, from when it joined. */
export function keepaliveBudget(now: number): TokenBucket {
  return new TokenBucket(KEEPALIVES_PER_SECOND, KEEPALIVE_BURST, now);
}

export class Admission {
  private readonly cookies: CookieJar;
  /** Replies per (hashed) address: bounded memory whatever the number of addresses. */
  private readonly unproven = new TokenBucketTable(UNPROVEN_BUCKETS, UNPROVEN_PER_SECOND, UNPROVEN_PER_SECOND);
  /** --key: publishers must sign every datagram with keys derived from it. */
  private readonly master?: MasterKey;
  /** --watch-key: viewers must prove they know it. */
  private readonly watchKey?: Buffer;

  constructor(
    now: number,
    opts: AdmissionOptions,
    private readonly counters: RelayCounters,
  ) {
    this.cookies = new CookieJar(now);
    this.master = opts.key;
    this.watchKey = opts.watchKey;
  }

  /** Rotates the cookie secret when due. */
  tick(now: number): void {
    this.cookies.tick(now);
  }

  /** Whether a PUBLISH may latch a stream: a keyed relay takes only signed publishers. */
  mayPublish(auth: Authenticated): boolean {
    if (this.master && !auth) {
      this.counters.authFailures++;
      return false;
    }
    return true;
  }

  /** A latched keyed publisher's datagram without its trailer; undefined (counted) when tag or replay check fails. */
  verifyPublisher(auth: PublisherAuth, buf: Buffer): Buffer | undefined {
    const r = verifyAuthTag(buf, auth.keys, auth.guard);
    if (r.ok) return r.packet;
    this.counters.authFailures++;
    return undefined;
  }

  /**
   * A datagram that did not parse as RTCP from an address that is not a keyed publisher: if it is
   * a PUBLISH followed by an auth trailer, verify it with the keys of the salt it announces; a
   * relay without --key says so instead of leaving the sharer guessing. Undefined: malformed.
   */
  signedPublish(buf: Buffer): SignedPublish {
    let msg: { stream: string; salt: Buffer } | undefined;
    try {
      if (buf.length > AUTH_TRAILER_BYTES) {
        for (const p of parseRtcp(buf.subarray(0, buf.length - AUTH_TRAILER_BYTES))) {
          const m = p.type === 'app' ? parseControl(p) : null;
          if (m?.kind === ControlType.Publish && m.salt) msg = { stream: m.stream, salt: m.salt };
        }
      }
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
    }
    if (!msg) return undefined;
    if (!this.master) return { ok: false, stream: msg.stream, reason: RefuseReason.RelayHasNoKey };
    const keys = streamKeys(this.master, msg.salt).auth;
    const guard = new ReplayGuard();
    const v = verifyAuthTag(buf, keys, guard);
    if (!v.ok) {
      this.counters.authFailures++;
      return { ok: false, stream: msg.stream, reason: RefuseReason.BadKey };
    }
    return { ok: true, packet: v.packet, auth: { keys, guard, salt: msg.salt } };
  }

  /**
   * An unknown address's SUBSCRIBE: 'challenge' until it echoes a cookie for its address, then
   * 'refuse' (counted) without the --watch-key proof. The address is proven by then, so a REFUSED
   * to it amplifies nothing.
   */
  proveViewer(msg: SubscribeMessage, from: Endpoint): 'proven' | 'challenge' | 'refuse' {
    if (!msg.cookie || !this.cookies.verify(from, msg.cookie)) return 'challenge';
    if (this.watchKey && !(msg.proof && verifyWatchProof(this.watchKey, msg.cookie, Buffer.from(msg.stream, 'utf8'), msg.proof))) {
      this.counters.authFailures++;
      return 'refuse';
    }
    return 'proven';
  }

  /** A known viewer's keepalive, within its budget (counted when over). */
  keepalive(budget: TokenBucket, now: number): boolean {
    if (budget.take(now)) return true;
    this.counters.rateLimited++;
    return false;
  }

  /** CHALLENGE: a cookie for this address, no larger than the request, within the unproven rate. */
  challenge(name: string, requestBytes: number, from: Endpoint, key: string, now: number): Buffer | null {
    if (!this.mayReply(key, now)) return null;
    const data = relayControl({ kind: ControlType.Challenge, stream: name, cookie: this.cookies.issue(from) });
    if (data.length > requestBytes) {
      // Never more bytes to an unproven address than it sent (a SUBSCRIBE without its cookie field).
      this.counters.malformed++;
      return null;
    }
    this.counters.challenges++;
    return data;
  }

  /** REFUSED: tells a sharer or viewer why, in fewer bytes than its request, within the unproven rate. */
  refusal(name: string, reason: RefuseReason, key: string, now: number): Buffer | null {
    if (!this.mayReply(key, now)) return null;
    return relayControl({ kind: ControlType.Refused, stream: name, reason });
  }

  private mayReply(key: string, now: number): boolean {
    if (this.unproven.take(bucketOf(key), now)) return true;
    this.counters.rateLimited++;
    return false;
  }
}

/** FNV-1a of an address key onto the unproven table: forged addresses share buckets. */
function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % UNPROVEN_BUCKETS;
}

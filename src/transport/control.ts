/**
 * udpcast's session messages, carried as RTCP APP packets (RFC 3550 §6.7) with the name "UDPC" so
 * they share the media port (RFC 5761) and any RTCP-aware tool sees well-formed RTCP:
 *
 *     APP subtype  direction          meaning
 *     0 PUBLISH    sharer → relay     "this SSRC and address carry stream NAME" (repeated: keepalive)
 *     1 SUBSCRIBE  viewer → relay     "send me stream NAME" (repeated: keepalive)
 *     2 ACK        relay → viewer     "subscribed to NAME; state live/waiting"
 *     3 ENDED      relay → viewer     "NAME's publisher left or went silent"
 *     4 LEAVE      viewer → relay     "stop sending me NAME"
 *     5 CHALLENGE  relay → viewer     "prove your address: echo this cookie in your SUBSCRIBE"
 *     6 REFUSED    relay → peer       "you may not publish / watch NAME" (reason byte: 1 taken,
 *                                     2 relay full, 3 wrong or missing key, 4 relay has no --key)
 *
 * Application-dependent data: one byte of name length, the UTF-8 name, then by kind:
 *     SUBSCRIBE, CHALLENGE  16-byte address cookie (all zero: none yet). A SUBSCRIBE always carries
 *                           the field, so a CHALLENGE is never larger than what it answers.
 *     ACK                   one state byte (1: the stream has a live publisher)
 *     REFUSED               one reason byte
 *     PUBLISH               optional 16-byte salt of the stream's keys (--encrypt / --key)
 * then zero padding to 32 bits.
 */
import { MAX_STREAM_NAME } from '../defaults.ts';
import { PacketError } from '../util/errors.ts';
import type { App } from './rtcp.ts';

export const APP_NAME = 'UDPC';
export const enum ControlType {
  Publish = 0,
  Subscribe = 1,
  Ack = 2,
  Ended = 3,
  Leave = 4,
  Challenge = 5,
  Refused = 6,
}
export const enum RefuseReason {
  Taken = 1,
  Full = 2,
  BadKey = 3,
  RelayHasNoKey = 4,
}
export const PROOF_BYTES = 16;
/** Bytes of the address cookie (RFC 7983-style stateless proof; see relay/cookie.ts). */
export const COOKIE_BYTES = 16;
export const SALT_BYTES = 16;
export const STREAM_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

export interface ControlMessage {
  kind: ControlType;
  stream: string;
  /** ACK only: true when the stream has a live publisher. */
  live?: boolean;
  /** SUBSCRIBE and CHALLENGE: the address cookie (undefined in a SUBSCRIBE: none yet). */
  cookie?: Buffer;
  /** PUBLISH and ACK: the per-stream salt of the keys, when the stream is keyed. */
  salt?: Buffer;
  /** SUBSCRIBE: proof of the --watch-key (after the cookie). */
  proof?: Buffer;
  /** REFUSED: why. */
  reason?: RefuseReason;
}

function extraBytes(msg: ControlMessage): number {
  switch (msg.kind) {
    case ControlType.Ack:
      return 1 + (msg.salt ? SALT_BYTES : 0);
    case ControlType.Refused:
      return 1;
    case ControlType.Subscribe:
      return COOKIE_BYTES + (msg.proof ? PROOF_BYTES : 0);
    case ControlType.Challenge:
      return COOKIE_BYTES;
    case ControlType.Publish:
      return msg.salt ? SALT_BYTES : 0;
    default:
      return 0;
  }
}

export function controlApp(msg: ControlMessage, ssrc: number): App {
  const name = Buffer.from(msg.stream, 'utf8');
  if (name.length === 0 || name.length > MAX_STREAM_NAME) {
    throw new PacketError(`stream name is ${name.length} bytes, must be 1-${MAX_STREAM_NAME}`);
  }
  const at = 1 + name.length;
  const data = Buffer.alloc(Math.ceil((at + extraBytes(msg)) / 4) * 4);
  data[0] = name.length;
  name.copy(data, 1);
  if (msg.kind === ControlType.Ack) data[at] = msg.live ? 1 : 0;
  if (msg.kind === ControlType.Refused) data[at] = msg.reason ?? 0;
  if (msg.cookie && (msg.kind === ControlType.Subscribe || msg.kind === ControlType.Challenge)) {
    if (msg.cookie.length !== COOKIE_BYTES) throw new PacketError(`UDPC: cookie is ${msg.cookie.length} bytes, must be ${COOKIE_BYTES}`);
    msg.cookie.copy(data, at);
  }
  if (msg.salt && (msg.kind === ControlType.Publish || msg.kind === ControlType.Ack)) {
    if (msg.salt.length !== SALT_BYTES) throw new PacketError(`UDPC: salt is ${msg.salt.length} bytes, must be ${SALT_BYTES}`);
    msg.salt.copy(data, msg.kind === ControlType.Ack ? at + 1 : at);
  }
  if (msg.proof && msg.kind === ControlType.Subscribe) {
    if (msg.proof.length !== PROOF_BYTES) throw new PacketError(`UDPC: proof is ${msg.proof.length} bytes, must be ${PROOF_BYTES}`);
    msg.proof.copy(data, at + COOKIE_BYTES);
  }
  return { type: 'app', subtype: msg.kind, ssrc, name: APP_NAME, data };
}

/** The control message in an APP packet, or null when the APP is not ours. */
export function parseControl(app: App): ControlMessage | null {
  if (app.name !== APP_NAME) return null;
  if (app.subtype > ControlType.Refused) throw new PacketError(`UDPC: unknown subtype ${app.subtype}`);
  const d = app.data;
  if (d.length < 1) throw new PacketError('UDPC: need 1 byte of name length, have 0');
  const len = d[0];
  const at = 1 + len;
  const kind = app.subtype as ControlType;
  const required = kind === ControlType.Ack || kind === ControlType.Refused ? 1 : kind === ControlType.Subscribe || kind === ControlType.Challenge ? COOKIE_BYTES : 0;
  if (len === 0 || at + required > d.length) {
    throw new PacketError(`UDPC: ${len}-byte name and ${required} bytes of fields need ${at + required} bytes of data, have ${d.length}`);
  }
  const stream = d.subarray(1, at).toString('utf8');
  if (!STREAM_NAME_RE.test(stream)) throw new PacketError(`UDPC: invalid stream name`);
  const msg: ControlMessage = { kind, stream };
  if (kind === ControlType.Ack) msg.live = d[at] === 1;
  if (kind === ControlType.Refused) msg.reason = d[at] as RefuseReason;
  if (kind === ControlType.Subscribe || kind === ControlType.Challenge) {
    const cookie = d.subarray(at, at + COOKIE_BYTES);
    if (cookie.some((b) => b !== 0)) msg.cookie = cookie;
  }
  const saltAt = kind === ControlType.Ack ? at + 1 : at;
  if ((kind === ControlType.Publish || kind === ControlType.Ack) && d.length >= saltAt + SALT_BYTES) {
    const salt = d.subarray(saltAt, saltAt + SALT_BYTES);
    if (salt.some((b) => b !== 0)) msg.salt = salt;
  }
  if (kind === ControlType.Subscribe && d.length >= at + COOKIE_BYTES + PROOF_BYTES) {
    const proof = d.subarray(at + COOKIE_BYTES, at + COOKIE_BYTES + PROOF_BYTES);
    if (proof.some((b) => b !== 0)) msg.proof = proof;
  }
  return msg;
}

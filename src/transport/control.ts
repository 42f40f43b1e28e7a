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
/** The relay's own SSRC, for the control messages and the feedback it originates (a viewer's is random, never taken for it). */
export const RELAY_SSRC = 0;
/**
 * RTP payload type of the sharer's probe padding (congestion.ts probes): the relay notes its
 * arrival for the feedback (RFC 8888) and drops it; no viewer is sent it. Dynamic (RFC 3551), and
 * unused by the codecs (96, 26) and FEC (127).
 */
export const PT_PROBE = 125;
/** Layer SSRCs a PUBLISH may name besides its own (quality layers, LAYERS_MAX − 1). */
export const MAX_LAYER_SSRCS = 2;
export const STREAM_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * One control message, by kind: each carries exactly the fields its kind has on the wire.
 * A salt (PUBLISH, ACK) is present when the stream is keyed; a cookie in a SUBSCRIBE only once
 * the relay sent one (CHALLENGE); a proof only for a relay with --watch-key. A field of all
 * zeros on the wire is read as absent.
 */
export type ControlMessage =
  /** layers: the SSRCs of the quality layers below the top one (the APP's SSRC), best first. */
  | { kind: ControlType.Publish; stream: string; salt?: Buffer; layers?: number[] }
  | { kind: ControlType.Subscribe; stream: string; cookie?: Buffer; proof?: Buffer }
  /** live: the stream has a publisher right now. */
  | { kind: ControlType.Ack; stream: string; live: boolean; salt?: Buffer }
  | { kind: ControlType.Ended; stream: string }
  | { kind: ControlType.Leave; stream: string }
  | { kind: ControlType.Challenge; stream: string; cookie?: Buffer }
  | { kind: ControlType.Refused; stream: string; reason: RefuseReason };

export type PublishMessage = Extract<ControlMessage, { kind: ControlType.Publish }>;
export type SubscribeMessage = Extract<ControlMessage, { kind: ControlType.Subscribe }>;

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
      // With layers, the salt field is written (zeros without a salt), then a count and the SSRCs.
      return msg.layers?.length ? SALT_BYTES + 1 + 4 * msg.layers.length : msg.salt ? SALT_BYTES : 0;
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
  const put = (what: string, v: Buffer | undefined, bytes: number, offset: number) => {
    if (!v) return;
    if (v.length !== bytes) throw new PacketError(`UDPC: ${what} is ${v.length} bytes, must be ${bytes}`);
    v.copy(data, offset);
  };
  switch (msg.kind) {
    case ControlType.Ack:
      data[at] = msg.live ? 1 : 0;
      put('salt', msg.salt, SALT_BYTES, at + 1);
      break;
    case ControlType.Refused:
      data[at] = msg.reason;
      break;
    case ControlType.Subscribe:
      put('cookie', msg.cookie, COOKIE_BYTES, at);
      put('proof', msg.proof, PROOF_BYTES, at + COOKIE_BYTES);
      break;
    case ControlType.Challenge:
      put('cookie', msg.cookie, COOKIE_BYTES, at);
      break;
    case ControlType.Publish:
      put('salt', msg.salt, SALT_BYTES, at);
      if (msg.layers?.length) {
        if (msg.layers.length > MAX_LAYER_SSRCS) throw new PacketError(`UDPC: ${msg.layers.length} layer SSRCs, at most ${MAX_LAYER_SSRCS}`);
        data[at + SALT_BYTES] = msg.layers.length;
        msg.layers.forEach((ssrc, i) => data.writeUInt32BE(ssrc >>> 0, at + SALT_BYTES + 1 + 4 * i));
      }
      break;
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
  /** A fixed-size field, absent when all zero (the sender had none) or beyond the data. */
  const field = (offset: number, bytes: number): Buffer | undefined => {
    if (d.length < offset + bytes) return undefined;
    const v = d.subarray(offset, offset + bytes);
    return v.some((b) => b !== 0) ? v : undefined;
  };
  switch (kind) {
    case ControlType.Ack:
      return { kind, stream, live: d[at] === 1, salt: field(at + 1, SALT_BYTES) };
    case ControlType.Refused:
      return { kind, stream, reason: d[at] as RefuseReason };
    case ControlType.Subscribe:
      return { kind, stream, cookie: field(at, COOKIE_BYTES), proof: field(at + COOKIE_BYTES, PROOF_BYTES) };
    case ControlType.Challenge:
      return { kind, stream, cookie: field(at, COOKIE_BYTES) };
    case ControlType.Publish: {
      // An older sharer stops after the salt: no layers. A count beyond the data is cut to what is there.
      const n = Math.min(d[at + SALT_BYTES] ?? 0, MAX_LAYER_SSRCS, Math.max(0, Math.floor((d.length - at - SALT_BYTES - 1) / 4)));
      const layers = Array.from({ length: n }, (_, i) => d.readUInt32BE(at + SALT_BYTES + 1 + 4 * i));
      return { kind, stream, salt: field(at, SALT_BYTES), ...(n ? { layers } : {}) };
    }
    default:
      return { kind, stream };
  }
}

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
 *
 * Application-dependent data: one byte of name length, the UTF-8 name, one state byte (ACK only),
 * zero padding to 32 bits.
 */
import { MAX_STREAM_NAME } from '../defaults.ts';
import { PacketError } from './errors.ts';
import type { App } from './rtcp.ts';

export const APP_NAME = 'UDPC';
export const enum ControlType {
  Publish = 0,
  Subscribe = 1,
  Ack = 2,
  Ended = 3,
  Leave = 4,
}
export const STREAM_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

export interface ControlMessage {
  kind: ControlType;
  stream: string;
  /** ACK only: true when the stream has a live publisher. */
  live?: boolean;
}

export function controlApp(msg: ControlMessage, ssrc: number): App {
  const name = Buffer.from(msg.stream, 'utf8');
  if (name.length === 0 || name.length > MAX_STREAM_NAME) {
    throw new PacketError(`stream name is ${name.length} bytes, must be 1-${MAX_STREAM_NAME}`);
  }
  const body = 1 + name.length + (msg.kind === ControlType.Ack ? 1 : 0);
  const data = Buffer.alloc(Math.ceil(body / 4) * 4);
  data[0] = name.length;
  name.copy(data, 1);
  if (msg.kind === ControlType.Ack) data[1 + name.length] = msg.live ? 1 : 0;
  return { type: 'app', subtype: msg.kind, ssrc, name: APP_NAME, data };
}

/** The control message in an APP packet, or null when the APP is not ours. */
export function parseControl(app: App): ControlMessage | null {
  if (app.name !== APP_NAME) return null;
  if (app.subtype > ControlType.Leave) throw new PacketError(`UDPC: unknown subtype ${app.subtype}`);
  const d = app.data;
  if (d.length < 1) throw new PacketError('UDPC: need 1 byte of name length, have 0');
  const len = d[0];
  const extra = app.subtype === ControlType.Ack ? 1 : 0;
  if (len === 0 || 1 + len + extra > d.length) {
    throw new PacketError(`UDPC: name length ${len} does not fit ${d.length} bytes of data`);
  }
  const stream = d.subarray(1, 1 + len).toString('utf8');
  if (!STREAM_NAME_RE.test(stream)) throw new PacketError(`UDPC: invalid stream name`);
  const msg: ControlMessage = { kind: app.subtype, stream };
  if (app.subtype === ControlType.Ack) msg.live = d[1 + len] === 1;
  return msg;
}

/**
 * Every codec udpcast knows, one line each. The rest of udpcast finds a codec here, by its
 * --codec name or by an RTP payload type, and never names one itself.
 */
import type { Codec } from './codec.ts';
import { h264 } from './h264/codec.ts';
import { mjpeg } from './mjpeg/codec.ts';

export const CODECS = {
  h264,
  mjpeg,
} as const satisfies Record<string, Codec>;

/** A --codec value. */
export type CodecName = keyof typeof CODECS;

export const CODEC_NAMES = Object.keys(CODECS) as CodecName[];
/** The codec a share uses unless told otherwise. */
export const DEFAULT_CODEC: CodecName = 'h264';

const BY_PAYLOAD_TYPE = new Map<number, Codec>(Object.values(CODECS).map((c) => [c.payloadType, c]));

export function codec(name: CodecName): Codec {
  return CODECS[name];
}

/** The codec an RTP payload type stands for, if udpcast knows it. */
export function codecOfPayloadType(pt: number): (Codec & { name: CodecName }) | undefined {
  return BY_PAYLOAD_TYPE.get(pt) as (Codec & { name: CodecName }) | undefined;
}

/**
 * The codec a publisher's SDP names (a=rtpmap encoding, RFC 8866 §6.6), or its static payload type
 * when it has no rtpmap (RFC 3551: JPEG is 26).
 */
export function codecOfRtpmap(encoding: string, payloadType: number): (Codec & { name: CodecName }) | undefined {
  const c = encoding
    ? Object.values(CODECS).find((x) => x.rtpmapName.toUpperCase() === encoding.toUpperCase())
    : payloadType < 96
      ? BY_PAYLOAD_TYPE.get(payloadType)
      : undefined;
  return c as (Codec & { name: CodecName }) | undefined;
}

export type { Codec };

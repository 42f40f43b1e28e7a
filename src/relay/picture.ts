/**
 * What a stream's picture is, read off the keyframe the relay caches (it depacketizes nothing): the
 * codec and that keyframe's RTP payloads, from which an SDP (rtsp/sdp.ts) or a listing (the HTTP
 * server's /streams.json) takes its parameters and size.
 */
import { isAudioPayloadType } from '../defaults.ts';
import { codecOfPayloadType, type Codec, type CodecName } from '../codecs/registry.ts';
import { isRtp, parseRtp, rtpPayloadType } from '../rtp/packet.ts';
import type { StreamState } from './routing.ts';

export interface CachedPicture {
  codec: Codec & { name: CodecName };
  /** The payloads of the cached keyframe's packets of that codec, in order. */
  payloads: Buffer[];
}

/** Undefined while the stream has no publisher or no keyframe cached. */
export function cachedPicture(stream: StreamState | undefined): CachedPicture | undefined {
  const frame = stream?.publisher ? stream.keyframes.frame : undefined;
  const video = frame?.find((p) => isRtp(p) && !isAudioPayloadType(rtpPayloadType(p)));
  const codec = video && codecOfPayloadType(rtpPayloadType(video));
  if (!frame || !codec) return undefined;
  const payloads: Buffer[] = [];
  for (const p of frame) {
    if (!isRtp(p) || rtpPayloadType(p) !== codec.payloadType) continue;
    try {
      payloads.push(parseRtp(p).payload);
    } catch {
      // a packet the cache kept but no parser takes: what it held is left out
    }
  }
  return { codec, payloads };
}

/** A listing's view of a stream's picture: codec name and size, null where not known yet. */
export function pictureSummary(stream: StreamState | undefined): { codec: string | null; size: string | null } {
  const p = cachedPicture(stream);
  const size = p?.codec.payloadsSize?.(p.payloads);
  return { codec: p?.codec.name ?? null, size: size ? `${size.width}x${size.height}` : null };
}

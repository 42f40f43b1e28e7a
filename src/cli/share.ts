/**
 * `udpcast share`: capture → encode (FFmpeg) → packetize → relay. Without --relay an embedded relay
 * serves viewers on --port, so `udpcast watch SHARER_HOST` needs no separate server.
 */
import { CONNECT_TIMEOUT_MS, DEFAULT_TEST_SIZE, VIEWER_TIMEOUT_MS } from '../defaults.ts';
import type { ShareSnapshot } from './snapshots.ts';
import { Encoder, type CapturedFrame } from '../encode/encoder.ts';
import { ffmpegHasFilter, locateFfmpeg } from '../encode/locate.ts';
import type { RelayServer } from '../relay/server.ts';
import { listen } from './relay.ts';
import { fmt } from '../relay/core.ts';
import { Publisher } from '../transport/publisher.ts';
import { PacketError } from '../transport/errors.ts';
import { RefuseReason } from '../transport/control.ts';
import { deriveMasterKey } from '../transport/secure.ts';
import { UsageError } from '../util/errors.ts';
import { resolveHost } from '../player/watch.ts';
import type { ShareOptions } from './options.ts';
import { RateMeter, round, startReporter } from './report.ts';

/** RFC 2435 §3.1.5-3.1.6: width and height travel as one byte each, in units of 8 pixels. */
const JPEG_MAX_DIMENSION = 2040;
/** How long the embedded relay may take to forward the sharer's BYE at shutdown. */
const BYE_FLUSH_MS = 300;

export interface ShareHandle {
  publisher: Publisher;
  relay?: RelayServer;
  encoder: Encoder;
  done: Promise<number>;
  stop(code?: number): void;
}

export function checkMjpegSize(size: { width: number; height: number } | undefined): void {
  if (!size) return;
  const { width, height } = size;
  if (width % 8 || height % 8 || width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION) {
    throw new UsageError(
      `--codec mjpeg carries at most ${JPEG_MAX_DIMENSION}x${JPEG_MAX_DIMENSION} in multiples of 8 (RFC 2435), ` +
        `got ${width}x${height}: pick --size like 1280x720, or use --codec h264`,
    );
  }
}

export async function startShare(o: ShareOptions, log: (line: string) => void): Promise<ShareHandle> {
  const ffmpeg = await locateFfmpeg({ flag: o.ffmpeg });
  // Windows: Desktop Duplication (ddagrab) is faster than GDI where this FFmpeg build has it.
  const hasDdagrab = process.platform === 'win32' && o.source === 'screen' && (await ffmpegHasFilter(ffmpeg.path, 'ddagrab'));
  const size = o.size ?? (o.source === 'test' ? DEFAULT_TEST_SIZE : undefined);
  if (o.codec === 'mjpeg') checkMjpegSize(size);

  // Built first: a bad display, region or encoder is a person's error before anything listens.
  const encoder = new Encoder({
    ffmpegPath: ffmpeg.path,
    capture: { source: o.source, display: o.display, region: o.region, fps: o.fps, size, hasDdagrab },
    encode: { codec: o.codec, encoder: o.encoder, bitrateKbps: o.bitrateKbps, fps: o.fps, gop: o.gop, quality: o.quality, size },
    log,
  });
  // scrypt takes ~0.5 s per passphrase: once here, shared by the publisher and the embedded relay.
  const keyMaster = o.key !== undefined ? deriveMasterKey(o.key) : undefined;
  const encryptMaster = o.encrypt !== undefined ? deriveMasterKey(o.encrypt) : undefined;
  let relay: RelayServer | undefined;
  let target: { address: string; port: number };
  if (o.relay) {
    const r = await resolveHost(o.relay.host);
    target = { address: r.address, port: o.relay.port };
  } else {
    relay = await listen({ host: o.host, port: o.port, key: keyMaster, log: (l) => log(`relay: ${l}`) });
    const bound = relay.address;
    target = { address: o.host.includes(':') ? '::1' : '127.0.0.1', port: bound.port };
    log(`relay listening on ${fmt(bound)}; viewers run: udpcast watch THIS_HOST:${bound.port}` + (o.stream !== 'main' ? ` --stream ${o.stream}` : ''));
  }
  const publisher = await Publisher.start({
    relay: target,
    stream: o.stream,
    codec: o.codec,
    fec: o.fec,
    security: keyMaster || encryptMaster ? { key: keyMaster, encrypt: encryptMaster } : undefined,
  });
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  let stopping = false;

  encoder.on('frame', (f: CapturedFrame) => {
    try {
      publisher.send(f);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      log(`cannot send frame: ${err.message}`);
      stop(2);
    }
  });
  publisher.onRefused = (reason) => {
    const why =
      reason === RefuseReason.Taken
        ? `stream ${o.stream} is being published by another sharer: pick another --stream, or wait until it ends`
        : reason === RefuseReason.Full
          ? `relay ${fmt(target)} carries as many streams as it may`
          : reason === RefuseReason.RelayHasNoKey
            ? `relay ${fmt(target)} runs without --key, so it cannot check ours: give it the same --key, or share without one`
            : `relay ${fmt(target)} refused our key: ${o.key === undefined ? 'it requires --key' : 'check --key'}`;
    log(`cannot publish: ${why}`);
    // A key that does not match is a person's setting (2); a taken or full relay is a failure (1).
    stop(reason === RefuseReason.BadKey || reason === RefuseReason.RelayHasNoKey ? 2 : 1);
  };
  // A viewer lost a reference frame and could not repair it: a keyframe from a fresh encoder run.
  publisher.onKeyframeRequest = () => {
    if (encoder.requestKeyframe()) log('keyframe requested by a viewer: starting a fresh encoder run');
  };
  encoder.on('end', () => {
    log('the source ended');
    stop(0);
  });
  encoder.on('fatal', (err: Error) => {
    log(err.message);
    stop(1);
  });
  encoder.start();

  const bitrate = new RateMeter();
  const fps = new RateMeter();
  const reporter = startReporter({
    statsJson: o.statsJson,
    dashboard: o.dashboard && { onQuit: () => stop(0) },
    snapshot: (): ShareSnapshot => {
      const now = Date.now();
      const c = publisher.counters;
      const reports = [...publisher.viewerReports.values()].filter((r) => now - r.at < VIEWER_TIMEOUT_MS);
      const viewers = relay ? (relay.core.streams.get(o.stream)?.viewers.size ?? 0) : reports.length;
      const rtts = reports.map((r) => r.rttMs).filter((r): r is number => r !== undefined);
      return {
        role: 'share',
        stream: o.stream,
        codec: o.codec,
        source: o.source,
        relay: relay ? `embedded, ${fmt(relay.address)}` : fmt(target),
        fps: round(fps.sample(c.framesSent, now)) ?? 0,
        bitrateKbps: round(bitrate.sample(c.bytesSent * 8, now) / 1000) ?? 0,
        framesEncoded: encoder.framesEncoded,
        framesSent: c.framesSent,
        keyframesSent: c.keyframesSent,
        packetsSent: c.packetsSent,
        bytesSent: c.bytesSent,
        viewers,
        worstLossPercent: reports.length ? round(Math.max(...reports.map((r) => r.fractionLost * 100)), 2) : null,
        worstRttMs: rtts.length ? round(Math.max(...rtts)) : null,
        viewerReports: reports.map((r) => ({
          ssrc: r.ssrc.toString(16).padStart(8, '0'),
          lossPercent: round(r.fractionLost * 100, 2) ?? 0,
          jitterMs: round(r.jitterMs, 2) ?? 0,
          rttMs: round(r.rttMs),
        })),
        fecPacketsSent: c.fecPacketsSent,
        keyframeRequests: c.keyframeRequests,
        keyframeRestarts: encoder.keyframeRestarts,
        encoderRestarts: encoder.restarts,
        sendErrors: c.sendErrors,
      };
    },
    // Nothing to say before the relay's first answer: the connect timeout's error is the line then.
    summary: (s) =>
      publisher.lastAckAt === undefined ? undefined :
      `share ${s.stream}: ${s.fps} fps ${s.bitrateKbps} kbit/s, ${s.framesEncoded} frames, ${s.viewers} viewer(s), ` +
      `worst loss ${s.worstLossPercent ?? '-'}%, worst RTT ${s.worstRttMs ?? '-'} ms`,
  });
  const timer = o.duration ? setTimeout(() => stop(0), o.duration * 1000) : undefined;
  const connectTimer = setTimeout(() => {
    if (publisher.lastAckAt !== undefined) return;
    log(
      `no answer from relay ${fmt(target)} after ${CONNECT_TIMEOUT_MS / 1000} s: ` +
        'is udpcast relay running there, and is its UDP port open?',
    );
    stop(1);
  }, CONNECT_TIMEOUT_MS);

  function stop(code = 0): void {
    if (stopping) return;
    stopping = true;
    clearTimeout(timer);
    clearTimeout(connectTimer);
    (async () => {
      await encoder.stop();
      reporter.stop(code === 0); // after the encoder, so the final line counts every frame sent
      await publisher.close();
      if (relay) {
        // Let the embedded relay pass our BYE on to the viewers before its socket closes.
        const end = Date.now() + BYE_FLUSH_MS;
        while (relay.core.streams.get(o.stream)?.publisher && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        await relay.close();
      }
    })().then(
      () => finish(code),
      () => finish(code),
    );
  }
  return { publisher, relay, encoder, done, stop };
}

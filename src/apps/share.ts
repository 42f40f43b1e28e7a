/**
 * `udpcast share`: capture → encode (FFmpeg) → packetize → relay. Without --relay an embedded relay
 * serves viewers on --port, so `udpcast watch SHARER_HOST` needs no separate server.
 */
import type { AudioSource } from '../capture/audio.ts';
import { availableParallelism, networkInterfaces } from 'node:os';
import { CB_RESUME_MS, CONNECT_TIMEOUT_MS, DEFAULT_TEST_SIZE, KEEPALIVE_MS, VIEWER_TIMEOUT_MS, WATCH_HINT_MAX_ADDRESSES, isAudioPayloadType } from '../defaults.ts';
import { DTX_HANGOVER_MS } from '../codecs/opus/dtx.ts';
import type { ShareSnapshot } from '../dashboard/snapshots.ts';
import { captureInputArgs, checkRegionInside, checkSourceExists, type CaptureOptions } from '../capture/source.ts';
import { probeInputSize } from '../capture/probe.ts';
import { Encoder, type CapturedFrame } from '../encode/encoder.ts';
import { LAYERS_MAX, LAYER_SCALES, LAYER_SHARES, autoLayers, encodedInputSize, layerBitrates, layerSize, sizeNotice, type EncodeOptions } from '../encode/ffmpeg-args.ts';
import { FrameUnsupportedError } from '../codecs/codec.ts';
import { ffmpegHasFilter, locateFfmpeg } from '../encode/locate.ts';
import type { RelayServer } from '../relay/io/server.ts';
import type { RtspServer } from '../relay/rtsp/server.ts';
import { listen, startEmbeddedHttp, startPush, startRtsp } from './relay.ts';
import { RelayCore, fmt } from '../relay/core.ts';
import { RtspPusher } from '../relay/rtsp/push.ts';
import { isRtp, rtpPayloadType, rtpSsrc } from '../rtp/packet.ts';
import { parseRtcp, serializeRtcp } from '../transport/rtcp.ts';
import { Publisher } from '../transport/publisher.ts';
import { CC_MEDIA_SHARE, RETARGET_HOLD_BELOW, UplinkLayers, describeDecrease } from '../transport/congestion.ts';
import { PacketError } from '../util/errors.ts';
import { RefuseReason } from '../transport/control.ts';
import { deriveMasterKey } from '../transport/secure.ts';
import { UsageError } from '../util/errors.ts';
import { resolveHost } from '../util/net.ts';
import type { ShareOptions } from './options.ts';
import { RateMeter, round, startReporter } from './report.ts';

/** How long the embedded relay may take to forward the sharer's BYE at shutdown. */
const BYE_FLUSH_MS = 300;

export interface ShareHandle {
  publisher: Publisher;
  relay?: RelayServer;
  encoder: Encoder;
  done: Promise<number>;
  stop(code?: number): void;
}

/**
 * What viewers type to reach the embedded relay bound to `host`: this machine's own addresses when
 * it listens on every interface (loopback only when it has no other), else the one it is bound to.
 */
export function watchHint(host: string, port: number, interfaces = networkInterfaces()): string {
  const addresses = viewerAddresses(host, interfaces);
  const at = (a: string) => fmt({ address: a, port });
  const more = addresses.length > WATCH_HINT_MAX_ADDRESSES ? ', …' : '';
  const others = addresses.slice(1, WATCH_HINT_MAX_ADDRESSES).map(at);
  return `udpcast watch ${at(addresses[0])}` + (others.length ? ` (or ${others.join(', ')}${more})` : '');
}

/** The addresses viewers reach the embedded relay bound to `host` at, the likeliest first (see watchHint). */
function viewerAddresses(host: string, interfaces = networkInterfaces()): string[] {
  const wildcard = host === '0.0.0.0' || host === '::';
  const addresses = wildcard
    ? Object.values(interfaces)
        .flat()
        .filter((i) => i !== undefined && !i.internal)
        // '::' takes IPv4 and IPv6; a link-local IPv6 address needs a %zone no viewer would type.
        .filter((i) => i!.family === 'IPv4' || (host === '::' && !i!.address.toLowerCase().startsWith('fe80:')))
        .map((i) => i!.address)
    : [host];
  if (addresses.length === 0) addresses.push(host === '::' ? '::1' : '127.0.0.1');
  return addresses;
}

/** A host name from --host or --relay as an address; a name that does not resolve is the person's to fix. */
async function resolveOption(option: string, host: string, hint: string) {
  try {
    return await resolveHost(host);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    throw new UsageError(`--${option}: cannot resolve ${JSON.stringify(host)}: ${hint}`);
  }
}

/** The Opus bitrate of --audio: clear speech and fair music at 48 kHz (RFC 6716 §2.1.1 puts full band at 24-64 kbit/s). */
export const AUDIO_BITRATE_KBPS = 64;
/** What each Opus packet costs beside its Opus bytes: IPv4 20 + UDP 8 + RTP 12 bytes, and 4 per RED copy plus 1. */
const AUDIO_HEADER_BYTES = 40;
const RED_HEADER_BYTES = 4;

/** What the sound takes on the path in kbit/s: Opus, its RED copies, the headers of a packet each `frameMs`. */
export function audioWireKbps(redundancy: number, frameMs: number): number {
  const packetsPerS = 1000 / frameMs;
  return AUDIO_BITRATE_KBPS * (1 + redundancy) + (packetsPerS * (AUDIO_HEADER_BYTES + (redundancy ? 1 + RED_HEADER_BYTES * redundancy : 0)) * 8) / 1000;
}

function describeAudio(a: AudioSource): string {
  if (a.kind === 'test') return 'a 1 kHz beep each second, on the test pattern\'s flash';
  if (a.kind === 'file') return 'the file\'s own';
  return `from ${a.name === 'default' ? "the desktop's output" : a.name}`;
}

/** "1280x720 at 2500k, 640x360 at 1000k, …" when the size is known; else the fractions. */
function describeLayers(capture: CaptureOptions, encode: EncodeOptions): string {
  const size = encodedInputSize(capture, encode);
  const rates = layerBitrates(encode.bitrateKbps, encode.layers ?? 1);
  return rates
    .map((kbps, i) => {
      const s = size && layerSize(encode.codec, size, i);
      const at = s ? `${s.width}x${s.height}` : i === 0 ? 'full size' : `1/${LAYER_SCALES[i]} size`;
      return `${at} at ${kbps}k`;
    })
    .join(', ');
}

/** The congestion controller's view for the dashboard and --stats-json (nulls before a report, with --no-adapt, or with the embedded relay). */
function congestionFields(publisher: Publisher, encoder: Encoder) {
  const cc = publisher.congestion;
  const read = cc && cc.reports > 0 ? cc : undefined;
  return {
    estimateKbps: read ? round(read.estimateKbps) ?? 0 : null,
    targetKbps: encoder.bitrateKbps,
    queueDelayMs: read ? round(read.queueDelayMs) ?? 0 : null,
    pathLossPercent: read ? round(read.loss * 100, 2) ?? 0 : null,
    ccState: read ? read.state : null,
    retargets: encoder.retargets,
    pacerDropped: publisher.pacerDropped,
  };
}

/** What share --push watches with --relay: the top layer's picture, the sound and the reports. */
const PUSH_PUBLISHER = 'push:share';
/** Catch-up pacing of the pushers' own core, as the relay's (relay/io/server.ts PUMP_MS). */
const PUSH_PUMP_MS = 4;
const PUSH_TICK_MS = 1000;

/**
 * share --push with --relay: no relay here to watch, so a RelayCore of its own (no sockets) is
 * fed every datagram the publisher sends, before encryption and signing. Only the top layer goes
 * in (one core lane takes one picture), and RTCP without the PUBLISH (the core's other transports
 * take no control messages).
 */
function pushCore(publisher: Publisher, stream: string): { core: RelayCore; pump(): void; close(): void } {
  const core = new RelayCore();
  const top = publisher.sender.ssrc;
  const publish = (now: number) => core.publishFrom(stream, PUSH_PUBLISHER, { address: '127.0.0.1', port: 0 }, top, now, () => undefined);
  publish(Date.now());
  let pumpTimer: NodeJS.Timeout | undefined;
  let closed = false;
  const pump = () => {
    if (pumpTimer || closed) return;
    pumpTimer = setTimeout(() => {
      pumpTimer = undefined;
      core.pump(Date.now());
      if (core.pumping) pump();
    }, PUSH_PUMP_MS);
  };
  publisher.onPacket = (packet) => {
    let p = packet;
    if (isRtp(p)) {
      if (rtpSsrc(p) !== top && !isAudioPayloadType(rtpPayloadType(p))) return;
    } else {
      try {
        const kept = parseRtcp(p).filter((r) => r.type !== 'app');
        if (kept.length === 0) return;
        p = serializeRtcp(kept);
      } catch {
        return;
      }
    }
    const now = Date.now();
    // Silent past PUBLISHER_TIMEOUT_MS (an encoder restart), the core ended the stream: again.
    if (!core.streams.get(stream)?.publisher) publish(now);
    core.fromPublisher(PUSH_PUBLISHER, p, now);
    if (core.pumping) pump();
  };
  const ticker = setInterval(() => core.tick(Date.now()), PUSH_TICK_MS);
  ticker.unref();
  return {
    core,
    pump,
    close: () => {
      closed = true;
      publisher.onPacket = undefined;
      clearInterval(ticker);
      clearTimeout(pumpTimer);
    },
  };
}

export async function startShare(o: ShareOptions, log: (line: string) => void): Promise<ShareHandle> {
  const ffmpeg = await locateFfmpeg({ flag: o.ffmpeg });
  // Windows: Desktop Duplication (ddagrab) is faster than GDI where this FFmpeg build has it.
  const hasDdagrab = process.platform === 'win32' && o.source === 'screen' && (await ffmpegHasFilter(ffmpeg.path, 'ddagrab'));
  const size = o.size ?? (o.source === 'test' ? DEFAULT_TEST_SIZE : undefined);
  const capture: CaptureOptions = {
    source: o.source,
    display: o.display,
    region: o.region,
    fps: o.fps,
    size,
    hasDdagrab,
    format: o.sourceFormat,
    inputOptions: o.sourceOptions,
    loop: o.loop,
  };
  const encode: EncodeOptions = {
    codec: o.codec, encoder: o.encoder, bitrateKbps: o.bitrateKbps, fps: o.fps, gop: o.gop, quality: o.quality, size, layers: o.layers,
    audio: o.audio ? { source: o.audio, bitrateKbps: AUDIO_BITRATE_KBPS, frameMs: o.audioFrameMs } : undefined,
  };
  checkSourceExists(capture);
  // A size the codec cannot carry is padded or scaled, and said once; a whole screen or a file
  // does not tell its size, so FFmpeg is asked.
  if (!encodedInputSize(capture, encode)) capture.probedSize = await probeInputSize(ffmpeg.path, captureInputArgs(capture));
  // A region outside a file's picture would fail in FFmpeg's crop filter with a cryptic message.
  if (o.region && o.source !== 'screen') checkRegionInside(capture, await probeInputSize(ffmpeg.path, captureInputArgs(capture)));

  // --layers auto: now that the size is known. Said below, with the layers' sizes.
  const auto = o.layers === undefined ? autoLayers(encode, encodedInputSize(capture, encode), availableParallelism()) : undefined;
  const layers = (encode.layers = o.layers ?? auto!.layers);
  // Built first: a bad display, region or encoder is a person's error before anything listens.
  const encoder = new Encoder({ ffmpegPath: ffmpeg.path, capture, encode, log });
  const notice = sizeNotice(capture, encode);
  if (notice) log(notice);
  // scrypt takes ~0.5 s per passphrase: once here, shared by the publisher and the embedded relay.
  const keyMaster = o.key !== undefined ? deriveMasterKey(o.key) : undefined;
  const encryptMaster = o.encrypt !== undefined ? deriveMasterKey(o.encrypt) : undefined;
  let relay: RelayServer | undefined;
  let rtsp: RtspServer | undefined;
  let web: Awaited<ReturnType<typeof startEmbeddedHttp>> = {};
  let target: { address: string; port: number };
  if (o.relay) {
    const r = await resolveOption('relay', o.relay.host, 'check the name or use the relay\'s IP address');
    target = { address: r.address, port: o.relay.port };
  } else {
    const bind = await resolveOption('host', o.host, 'give an address of this machine (0.0.0.0: every interface, 127.0.0.1: this machine only)');
    relay = await listen({ host: bind.address, port: o.port, key: keyMaster, log: (l) => log(`relay: ${l}`) });
    const bound = relay.address;
    target = { address: bind.family === 6 ? '::1' : '127.0.0.1', port: bound.port };
    log(`relay listening on ${fmt(bound)}; viewers run: ${watchHint(bound.address, bound.port)}` + (o.stream !== 'main' ? ` --stream ${o.stream}` : ''));
    rtsp = await startRtsp(relay, { host: bind.address, rtspPort: o.rtspPort, rtspPortGiven: o.rtspPortGiven, key: o.key }, (l) => log(`relay: ${l}`));
    try {
      const shownHost = viewerAddresses(bound.address)[0];
      web = await startEmbeddedHttp(relay, { host: bind.address, shownHost, httpPort: o.httpPort, httpPortGiven: o.httpPortGiven }, (l) => log(`relay: ${l}`));
    } catch (err) {
      await Promise.all([relay.close(), rtsp?.close()]);
      throw err;
    }
  }
  // The path must carry every layer's bitrate plus RTP/UDP headers, RTCP and FEC parity.
  const shares = LAYER_SHARES.slice(0, layers);
  const allLayersKbps = o.bitrateKbps * shares.reduce((a, b) => a + b, 0);
  const soundKbps = o.audio ? audioWireKbps(o.audioRedundancy, o.audioFrameMs) : 0;
  const pathMaxKbps = (allLayersKbps / CC_MEDIA_SHARE + soundKbps) * (o.fec ? 1 + 1 / o.fec.groupSize : 1);
  const chosen = auto ? ` (--layers auto: ${auto.why}; --layers 1-${LAYERS_MAX} to choose)` : '';
  if (layers > 1) log(`sending ${layers} quality layers${chosen}: ${describeLayers(capture, encode)}`);
  else if (auto) log(`sending 1 quality layer${chosen}`);
  const publisher = await Publisher.start({
    relay: target,
    stream: o.stream,
    codec: o.codec,
    fec: o.fec,
    // Congestion control on the path to the relay; the embedded relay has none: it is this
    // machine's loopback, where the controller would read this machine's load as a queue (one run
    // with a browser starting: "a queue of 82 ms", encoder 2500 → 98 kbit/s). Each viewer's own
    // path is fitted by the relay's choice of layer, as with any relay.
    congestion: o.adapt && !relay ? { maxKbps: pathMaxKbps } : undefined,
    layers,
    audio: o.audio !== undefined,
    audioRedundancy: o.audioRedundancy,
    audioDtx: o.audioDtx,
    security: keyMaster || encryptMaster ? { key: keyMaster, encrypt: encryptMaster } : undefined,
  });
  if (o.audio) {
    const red = o.audioRedundancy ? `, each packet with copies of the ${o.audioRedundancy === 1 ? 'one' : o.audioRedundancy} before it (RED)` : '';
    const dtx = o.audioDtx ? `; silence is not sent after its first ${DTX_HANGOVER_MS} ms (DTX)` : '';
    log(`sound: ${describeAudio(o.audio)}, Opus at ${AUDIO_BITRATE_KBPS} kbit/s in ${o.audioFrameMs} ms packets${red}: about ${Math.round(soundKbps)} kbit/s on the path, kept before the picture's share${dtx}`);
  }
  // --push: pushers watch the embedded relay's core, or (with --relay) a core of their own that
  // sees what the publisher sends.
  const local = o.push?.length && !relay ? pushCore(publisher, o.stream) : undefined;
  const pushers = (o.push ?? []).map((url) =>
    relay ? startPush(relay, o.stream, url, log) : new RtspPusher({ core: local!.core, stream: o.stream, url, pump: local!.pump, log }),
  );
  // The sound goes out as it comes, whatever the picture does (paused layers, a keyframe wait).
  encoder.on('audio', (p) => publisher.sendAudio(p));
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  let stopping = false;
  /** The final summary is being written (after the encoder has drained). */
  let ending = false;

  const startedAt = Date.now();
  let firstFrameAt: number | undefined;
  let stoppedAt: number | undefined;
  encoder.on('frame', (f: CapturedFrame) => {
    firstFrameAt ??= Date.now();
    try {
      publisher.send(f);
    } catch (err) {
      // FrameUnsupportedError: a frame the payload format cannot carry (its message says what to change).
      if (!(err instanceof PacketError || err instanceof FrameUnsupportedError)) throw err;
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
            : o.key === undefined
              ? `relay ${fmt(target)} requires a key: share with --key or --key-file (the relay's passphrase)`
              : `relay ${fmt(target)} refused our key: check --key (the relay's passphrase)`;
    log(`cannot publish: ${why}`);
    // A key that does not match is a person's setting (2); a taken or full relay is a failure (1).
    stop(reason === RefuseReason.BadKey || reason === RefuseReason.RelayHasNoKey ? 2 : 1);
  };
  // A relay that stops answering (killed, restarting, the path cut) is said once, and again when it is
  // back; meanwhile we keep announcing, and a restarted relay takes the stream back by itself.
  publisher.onRelayState = (state, silentMs) => {
    const s = round(silentMs / 1000);
    log(
      state === 'not answering'
        ? `relay ${fmt(target)} not answering for ${s} s: still sending, retrying every ${KEEPALIVE_MS / 1000} s`
        : `relay ${fmt(target)} answering again after ${s} s`,
    );
  };
  // Congestion control: the encoder follows the path's estimate (down soon, up after lasting room),
  // when its rate is a bitrate (not MJPEG's fixed --quality) and a new run does not replay a file.
  // Upper layers are paused at once when the path narrows; the encoder follows after.
  const plan = publisher.congestion && o.quality === undefined ? new UplinkLayers(o.bitrateKbps, shares, soundKbps) : undefined;
  publisher.onEstimate = (kbps, probed) => {
    if (!plan) return;
    const now = Date.now();
    const before = plan.firstActive;
    const step = plan.decide(kbps, now, probed);
    const d = publisher.congestion!.lastDecrease;
    const why = (down: boolean) => (down && d ? describeDecrease(d) : 'room on the path');
    if (step.firstActive !== undefined) {
      publisher.setFirstActive(step.firstActive);
      const sent = layers - step.firstActive;
      log(`the path takes about ${Math.round(kbps)} kbit/s (${why(step.firstActive > before)}): sending ${sent} of ${layers} layers`);
      // A layer sent again starts at a keyframe, and the viewers of a paused one move to a keyframe
      // of the layer below (the relay sees the pause by it): from a fresh run, unless one is coming.
      if (step.retarget === undefined) encoder.requestKeyframe({ defer: true });
    }
    const want = step.retarget;
    if (want === undefined || !encoder.retarget(want)) return;
    log(`the path takes about ${Math.round(kbps)} kbit/s (${why(want < plan.policy.targetKbps)}): encoder ${plan.policy.targetKbps} → ${want} kbit/s`);
    // A deep cut: the old run's frames until the new one's keyframe would only queue or be dropped.
    if (want < plan.policy.targetKbps * RETARGET_HOLD_BELOW) publisher.holdForKeyframe();
    const first = plan.retargeted(want, kbps, now);
    publisher.setFirstActive(first);
  };
  // RFC 8083 on the uplink: media stops while the path cannot carry it, and starts again by itself.
  publisher.onBreaker = (state, why) => {
    if (state === 'open') log(`media to relay ${fmt(target)} paused: ${why} (RFC 8083 circuit breaker); trying again in ${CB_RESUME_MS / 1000} s`);
    else {
      log(`media to relay ${fmt(target)} again after its circuit breaker`);
      encoder.requestKeyframe();
    }
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
    // FFmpeg's words for a sound device it cannot open name the device and no way on
    // ("nosuchdevice: No such process"): say where the names come from.
    const device = o.audio?.kind === 'device' ? o.audio.name : undefined;
    const hint = device && err.message.includes(device) ? ` (--audio ${device}: udpcast share --audio list prints the sound sources here)` : '';
    log(err.message + hint);
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
      // Once stopped the encoder sends nothing, so a rate over the last moment would read 0: the
      // final line gives the averages from the first frame to the stop instead.
      const sending = stoppedAt !== undefined && firstFrameAt !== undefined ? Math.max(1, stoppedAt - firstFrameAt) / 1000 : 0;
      const average = (n: number) => (sending > 0 ? n / sending : 0);
      return {
        role: 'share',
        stream: o.stream,
        codec: o.codec,
        source: o.source,
        relay: relay ? `embedded, ${fmt(relay.address)}` : fmt(target),
        relayState: publisher.relay.state,
        relaySilentS: publisher.relay.state === 'not answering' ? round(publisher.relay.silentFor(now) / 1000, 0) : null,
        relayOutages: publisher.relay.outages,
        fps: round(stopping ? average(c.framesSent) : fps.sample(c.framesSent, now)) ?? 0,
        bitrateKbps: round((stopping ? average(c.bytesSent * 8) : bitrate.sample(c.bytesSent * 8, now)) / 1000) ?? 0,
        framesEncoded: encoder.framesEncoded,
        framesSent: c.framesSent,
        keyframesSent: c.keyframesSent,
        audioPacketsSent: c.audioPacketsSent,
        audioSilenceNotSent: c.audioSilenceNotSent,
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
        resent: c.resent,
        keyframeRequests: c.keyframeRequests,
        keyframeRestarts: encoder.keyframeRestarts,
        encoderRestarts: encoder.restarts,
        sendErrors: c.sendErrors,
        ...congestionFields(publisher, encoder),
        framesHeld: c.framesHeld,
        probes: c.probes,
        uplinkPaused: publisher.breaker.open ? publisher.breaker.open.why : null,
        layers,
        layersSent: layers - (plan?.firstActive ?? 0),
        ...(pushers.length ? { push: pushers.map((p) => p.status) } : {}),
      };
    },
    // Nothing to say before the relay's first answer: the connect timeout's error is the line then.
    summary: (s) =>
      publisher.lastAckAt === undefined ? undefined :
      // Stopping (the encoder draining): the next line is the last one, said once.
      stopping && !ending ? undefined :
      // While the relay is silent, a sending rate and a viewer count would read as if all were fine.
      s.relayState === 'not answering' && !stopping ? `share ${s.stream}: relay ${s.relay} not answering for ${s.relaySilentS} s, retrying; ${s.framesEncoded} frames encoded` :
      (stopping
        ? `share ${s.stream} ended after ${round(((stoppedAt ?? Date.now()) - startedAt) / 1000)} s: ${s.framesSent} frames sent, on average ${s.fps} fps ${s.bitrateKbps} kbit/s, `
        : `share ${s.stream}: ${s.fps} fps ${s.bitrateKbps} kbit/s, ${s.framesEncoded} frames, `) +
      `${s.viewers} viewer(s), worst loss ${s.worstLossPercent ?? '-'}%, worst RTT ${s.worstRttMs ?? '-'} ms`,
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
    stoppedAt = Date.now();
    clearTimeout(timer);
    clearTimeout(connectTimer);
    (async () => {
      await encoder.stop();
      ending = true;
      reporter.stop(code === 0); // after the encoder, so the final line counts every frame sent
      await publisher.close();
      // Each push says TEARDOWN, so the server ends its recording cleanly.
      await Promise.all(pushers.map((p) => p.close()));
      local?.close();
      if (relay) {
        // Let the embedded relay pass our BYE on to the viewers before its socket closes.
        const end = Date.now() + BYE_FLUSH_MS;
        while (relay.core.streams.get(o.stream)?.publisher && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        web.browsers?.closeAll();
        await Promise.all([relay.close(), rtsp?.close(), web.http?.close()]);
      }
    })().then(
      () => finish(code),
      () => finish(code),
    );
  }
  return { publisher, relay, encoder, done, stop };
}

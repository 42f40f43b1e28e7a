/**
 * `udpcast watch`: subscribes to a stream on a relay, reassembles whole frames and hands them to
 * ffplay and/or a file. The protocol lives in ViewerCore; this file owns the socket, the timers,
 * the player and the shutdown.
 */
import dgram from 'node:dgram';
import { CONNECT_TIMEOUT_MS, KEEPALIVE_MS, WAITING_NOTICE_MS } from '../defaults.ts';
import { RateMeter, round, startReporter } from './report.ts';
import type { WatchOptions } from './options.ts';
import { locateFfplay } from '../encode/locate.ts';
import { UsageError } from '../util/errors.ts';
import { resolveHost, widenBuffers } from '../util/net.ts';
import { deriveMasterKey, deriveWatchKey } from '../transport/secure.ts';
import { FileSink, type FrameSink } from '../player/sinks.ts';
import { FfplaySink } from '../player/ffplay.ts';
import { performance } from 'node:perf_hooks';
import { displayMissing } from '../player/display.ts';
import { ViewerCore, type ViewerOutput } from '../player/viewer.ts';

/** How often the jitter buffer is polled for expired gaps and NACK repeats. */
const POLL_MS = 5;
import type { WatchSnapshot } from '../dashboard/snapshots.ts';

export interface WatchHandle {
  viewer: ViewerCore;
  /** Resolves with the exit code once watch has ended and cleaned up. */
  done: Promise<number>;
  stop(code?: number): void;
}

export async function startWatch(o: WatchOptions, log: (line: string) => void): Promise<WatchHandle> {
  const relay = await resolveHost(o.target.host);
  const ffplay = o.player === 'ffplay' ? locateFfplay() : null;
  if (o.player === 'ffplay' && !ffplay) {
    throw new UsageError(
      'ffplay not found on PATH (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg); ' +
        'or watch without a window: --player none --output FILE',
    );
  }
  const noDisplay = o.player === 'ffplay' ? displayMissing() : undefined;
  if (noDisplay) throw new UsageError(`${noDisplay}: no window can open; watch with --player none --output FILE (or - to pipe), or set DISPLAY`);
  const viewer = new ViewerCore(o.stream, {
    latencyMs: o.latencyMs,
    encrypt: o.encrypt !== undefined ? deriveMasterKey(o.encrypt) : undefined,
    watchKey: o.watchKey !== undefined ? deriveWatchKey(deriveMasterKey(o.watchKey)) : undefined,
  });
  viewer.onLog = log;
  const socket = dgram.createSocket(relay.family === 6 ? 'udp6' : 'udp4');
  const sinks: FrameSink[] = [];
  const budgetMs = () => viewer.latencyBudgetMs;
  if (o.output) sinks.push(new FileSink(o.output, { budgetMs, log, audio: o.audio, soundHeard: () => viewer.soundHeard }));
  let player: FfplaySink | undefined;
  let sinkErrors = 0;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  let stopping = false;

  const send = (b: Buffer) => socket.send(b, o.target.port, relay.address, () => {});
  socket.on('error', () => {}); // ICMP unreachable while the relay is down: keep trying
  const deliver = (out: ViewerOutput) => {
    for (const b of out.send) send(b);
    const now = performance.now(); // sinks time frames on a monotonic clock (a wall-clock step is not a stall)
    // Sound first: a packet captured before the frame that came with it is written before it.
    if (o.audio) for (const a of out.audio) for (const s of sinks) s.writeAudio?.(a, now);
    for (const f of out.frames) {
      if (ffplay && !player && !stopping) {
        player = new FfplaySink({
          ffplayPath: ffplay.path,
          title: `udpcast: ${o.stream}`,
          budgetMs,
          log,
          sound: o.audio,
          onNeedKeyframe: () => {
            const pli = viewer.requestKeyframe(Date.now());
            if (pli) send(pli);
          },
          onExit: (how, err) => {
            if (stopping) return;
            if (!how) {
              log(err?.message ?? 'ffplay failed to start'); // OwnedProcess says "ffplay failed to start: … not found"
              stop(1);
            } else {
              log(how.line);
              stop(how.closed ? 0 : 1); // a person closing the window ends watch normally
            }
          },
        });
        sinks.push(player);
      }
      for (const s of sinks) {
        try {
          s.write(f, now);
        } catch (err) {
          // A frame no container could take (a malformed header that got past the depacketizer):
          // counted and dropped; the receive loop goes on.
          sinkErrors++;
          if (sinkErrors === 1) log(`a frame could not be written: ${(err as Error).message}`);
        }
      }
    }
  };
  // The relay answered but nobody publishes the stream (yet, or any more): say so at once and
  // again every WAITING_NOTICE_MS while it lasts, and keep waiting, as a call app waits for its host.
  const where = `stream ${o.stream} at ${o.target.host}:${o.target.port}`;
  let waitNoticeAt: number | undefined;
  const noticeWaiting = (now: number) => {
    if (viewer.state !== 'waiting' && viewer.state !== 'ended') {
      waitNoticeAt = undefined;
      return;
    }
    if (waitNoticeAt !== undefined && now - waitNoticeAt < WAITING_NOTICE_MS) return;
    waitNoticeAt = now;
    log(`waiting for a sharer on ${where}`);
  };
  socket.on('message', (msg) => {
    deliver(viewer.onDatagram(msg, Date.now()));
    if (!stopping) noticeWaiting(Date.now());
    if (viewer.fatal && !stopping) {
      log(`udpcast watch: ${viewer.fatal}`);
      stop(2);
    }
  });
  // Gaps are given up and NACKs repeated on time even when no packet arrives to trigger it.
  const poller = setInterval(() => deliver(viewer.poll(Date.now())), POLL_MS);
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  // A keyframe burst, or a moment watch is not scheduled (a busy machine), must not overflow the
  // kernel's ~208 KiB default: each datagram it drops is a loss to repair, or a glitch in the sound.
  widenBuffers(socket);
  send(viewer.keepalive(Date.now()));
  const keepalive = setInterval(() => {
    send(viewer.keepalive(Date.now()));
    noticeWaiting(Date.now());
  }, KEEPALIVE_MS);

  const bitrate = new RateMeter();
  const fps = new RateMeter();
  const snapshot = (): WatchSnapshot => {
    const now = Date.now();
    const s = viewer.stats.snapshot();
    const totals = viewer.receiveTotals;
    const c = viewer.counters;
    const audio = viewer.audio;
    const expected = viewer.packetsExpected;
    return {
      role: 'watch',
      stream: o.stream,
      relay: `${o.target.host}:${o.target.port}`,
      state: viewer.state,
      codec: viewer.codec ?? null,
      width: viewer.width ?? null,
      height: viewer.height ?? null,
      packetsReceived: totals.packetsReceived,
      packetsExpected: expected,
      lostOnWire: c.lostOnWire,
      lostOnWirePercent: round(expected > 0 ? (100 * c.lostOnWire) / expected : 0, 2) ?? 0,
      unrepaired: c.unrepaired,
      repairPending: viewer.repairPending,
      tooLate: c.tooLate,
      rfc3550Lost: totals.rfc3550Lost,
      jitterMs: round(s.jitterMs, 2) ?? 0,
      bitrateKbps: round(bitrate.sample(c.bytes * 8, now) / 1000) ?? 0,
      fps: round(fps.sample(c.framesComplete, now)) ?? 0,
      framesComplete: c.framesComplete,
      framesDropped: c.framesDropped,
      framesSkipped: c.framesSkipped,
      latencyMs: round(viewer.lastLatencyMs),
      duplicates: totals.duplicates,
      reordered: c.reordered,
      malformed: c.malformed,
      keyframeRequests: c.keyframeRequests,
      nacksSent: c.nacksSent,
      recoveredByRtx: c.recoveredByRtx,
      recoveredByFec: c.recoveredByFec,
      framesGivenUp: c.framesGivenUp,
      rttMs: round(viewer.rttMs),
      latencyBudgetMs: viewer.latencyBudgetMs,
      firstFrameMs: viewer.firstFrameMs ?? null,
      publisherRestarts: c.publisherRestarts,
      layerMoves: c.layerMoves,
      audioPackets: c.audioPackets,
      audioLost: c.audioLost,
      audioLate: c.audioLate,
      audioRecovered: c.audioRecovered,
      audioConcealed: c.audioConcealed,
      audioSilence: c.audioSilence,
      audioJitterMs: c.audioPackets > 0 ? round(audio.jitterMs) : null,
      audioSyncMs: audio.latencyMs === undefined || viewer.lastLatencyMs === undefined ? null : round(audio.latencyMs - viewer.lastLatencyMs),
      undecryptable: c.undecryptable,
      player: player ? player.state : null,
      playerRestarts: player?.restarts ?? 0,
      framesHeldBack: player?.framesHeldBack ?? 0,
      playerSoundPlayed: player?.soundPlayed ?? 0,
      playerSoundNotPlayed: player?.soundNotPlayed ?? 0,
      playerSoundDrains: player?.soundDrains ?? 0,
      framesStale: player?.framesStale ?? 0,
      playerDropped: player?.playerDropped ?? 0,
      sinkErrors,
    };
  };
  const reporter = startReporter({
    statsJson: o.statsJson,
    dashboard: o.dashboard && { onQuit: () => stop(0), stdoutIsVideo: o.output === '-' },
    snapshot,
    // Nothing to say before the first answer (the connect timeout's error is the line then), nor
    // while no sharer publishes (the waiting notice is).
    summary: (s) =>
      s.state === 'connecting' || s.state === 'waiting' ? undefined :
      `watch ${s.stream} [${s.state}] ${s.fps} fps ${s.bitrateKbps} kbit/s, lost ${s.lostOnWire} (${s.lostOnWirePercent}%) on the wire: ` +
      `${s.recoveredByRtx + s.recoveredByFec} repaired, ${s.unrepaired} unrepaired, ` +
      `jitter ${s.jitterMs} ms, latency ${s.latencyMs ?? '-'} ms, frames ${s.framesComplete} ok / ${s.framesDropped} dropped` +
      (s.player === 'behind' ? ', PLAYER BEHIND' : s.playerRestarts > 0 ? `, player restarted ${s.playerRestarts}x` : ''),
  });
  /** Never heard from the relay at all: most likely a wrong address or a blocked port, so say so. */
  const noAnswer = (seconds: number) =>
    `no answer from relay ${o.target.host}:${o.target.port} after ${seconds} s: ` +
    'is udpcast share or udpcast relay running there, and is its UDP port open?';
  const timer = o.duration
    ? setTimeout(() => {
        // Nothing was ever heard, or nothing published there: not a success, whatever the clock says.
        if (viewer.counters.datagrams === 0) {
          log(noAnswer(o.duration!));
          stop(1);
        } else if (viewer.publisherSsrc === undefined && viewer.state === 'waiting') {
          log(`no sharer published ${where} in ${o.duration} s`);
          stop(1);
        } else {
          stop(0);
        }
      }, o.duration * 1000)
    : undefined;
  // Once it has answered, a silent relay is "reconnecting" and watch keeps trying.
  const connectTimer = setTimeout(() => {
    if (viewer.counters.datagrams > 0) return;
    log(noAnswer(CONNECT_TIMEOUT_MS / 1000));
    stop(1);
  }, CONNECT_TIMEOUT_MS);

  function stop(code = 0): void {
    if (stopping) return;
    stopping = true;
    clearInterval(keepalive);
    clearInterval(poller);
    clearTimeout(timer);
    clearTimeout(connectTimer);
    reporter.stop(code === 0);
    socket.send(viewer.goodbye(), o.target.port, relay.address, () => {
      socket.close();
      Promise.all(sinks.map((s) => s.close())).then(
        () => finish(code),
        () => finish(code),
      );
    });
  }

  return { viewer, done, stop };
}

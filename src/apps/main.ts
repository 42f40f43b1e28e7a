/**
 * Runs one command: validates its options into a typed object, starts it, ends it cleanly on
 * SIGINT/SIGTERM or --duration, and maps errors to exit codes (2: a person's mistake, 1: a failure).
 */
import { AUDIO_LIST, parseAudio } from '../capture/audio.ts';
import { listAudioSources } from '../capture/audio-list.ts';
import { AUDIO_FRAME_MS_DEFAULT, AUDIO_RED_DEFAULT, AUDIO_RED_MAX, type AudioFrameMs, DEFAULT_PORT, HTTP_PORT_DEFAULT, RTSP_PORT_DEFAULT, DEFAULT_STREAM, DEFAULT_TEST_SIZE, DEFAULT_FPS, DEFAULT_BITRATE_KBPS, DEFAULT_GOP } from '../defaults.ts';
import { CODEC_NAMES, DEFAULT_CODEC, codec as codecOf } from '../codecs/registry.ts';
import { locateFfmpeg, locateFfplay } from '../encode/locate.ts';
import { LAYERS_MAX } from '../encode/ffmpeg-args.ts';
import { startWatch } from './watch.ts';
import { displayMissing } from '../player/display.ts';
import { UsageError } from '../util/errors.ts';
import { secretsProblem } from '../transport/secure.ts';
import {
  checkChoice,
  checkDuration,
  checkInt,
  checkNumber,
  checkPort,
  checkStream,
  checkPushUrls,
  parseBitrate,
  parseRelayPush,
  parseFec,
  readSecret,
  checkOutput,
  parseHostPort,
  parseRegion,
  parseSize,
  parseSourceOption,
  type CommonOptions,
  type RelayOptions,
  type Secrets,
  type ShareOptions,
  type WatchOptions,
} from './options.ts';
import { startRelay } from './relay.ts';
import { startShare } from './share.ts';
import { impairOptions, startImpair } from './impair.ts';
import { printSdp } from './sdp.ts';
import { listStreams } from './list.ts';
import { dashboardLog } from '../dashboard/screen.ts';

export interface Command {
  name: 'share' | 'relay' | 'watch' | 'demo' | 'impair' | 'sdp' | 'list';
  args: Record<string, unknown>;
  /** Options set by a UDPCAST_* variable rather than on the command line: option name → variable. */
  environment?: Record<string, string>;
}

/** --http of share's embedded relay and of relay: the port, and whether it was given (RelayOptions.httpPortGiven). */
function httpPortOption(a: Record<string, unknown>): { httpPort: number; httpPortGiven: boolean } {
  return { httpPort: a.http === undefined ? HTTP_PORT_DEFAULT : checkPort('http', a.http, true), httpPortGiven: a.http !== undefined };
}

/** --rtsp-port of share's embedded relay and of relay: the port, and whether it was given (RelayOptions.rtspPortGiven). */
function rtspPortOption(a: Record<string, unknown>): { rtspPort: number; rtspPortGiven: boolean } {
  return { rtspPort: a.rtspPort === undefined ? RTSP_PORT_DEFAULT : checkPort('rtsp-port', a.rtspPort, true), rtspPortGiven: a.rtspPort !== undefined };
}

/** --layers: auto, or a whole number 1-LAYERS_MAX. */
function checkLayers(v: unknown): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > LAYERS_MAX) throw new UsageError(`--layers must be auto or 1-${LAYERS_MAX}, got ${String(v).trim() || '""'}`);
  return n;
}

/**
 * A bad value from a UDPCAST_* variable is named as that variable, with the text it holds
 * ("UDPCAST_FPS must be …, got abc"): the person never typed --fps, and yargs has already made
 * a number of "abc".
 */
export function nameVariable(message: string, environment: Record<string, string> = {}, env = process.env): string {
  const flag = /^--([a-z][a-z0-9-]*)/.exec(message);
  const variable = flag ? environment[flag[1]] : undefined;
  if (!variable) return message;
  return variable + message.slice(flag![0].length).replace(/got something that is not a number$/, `got ${env[variable]}`);
}

interface Handle {
  done: Promise<number>;
  stop(code?: number): void;
}

// While a dashboard is drawn, log lines go to its log panel (written raw they would tear the screen).
const log = (line: string) => {
  if (!dashboardLog(line)) process.stderr.write(`${line}\n`);
};

/** --stats-json, --dashboard and --duration, which every role takes. */
function commonOptions(a: Record<string, unknown>): CommonOptions {
  return {
    statsJson: a.statsJson !== undefined ? String(a.statsJson) : undefined,
    dashboard: a.dashboard !== false,
    duration: checkDuration('duration', a.duration),
  };
}

/** Refuses passphrases that would let the relay read the pictures (secretsProblem). */
function checkSecrets<T extends Secrets>(o: T): T {
  const problem = secretsProblem(o);
  if (problem) throw new UsageError(problem);
  return o;
}

export function shareOptions(a: Record<string, unknown>): ShareOptions {
  const codec = checkChoice('codec', a.codec ?? DEFAULT_CODEC, CODEC_NAMES);
  // A quality-driven codec (MJPEG) has one knob: a fixed quality, or a rate its encoder keeps to by
  // choosing the quality.
  const knob = codecOf(codec).quality;
  if (!knob && a.quality !== undefined) {
    const takers = CODEC_NAMES.filter((n) => codecOf(n).quality).map((n) => `--codec ${n}`);
    throw new UsageError(`--quality applies to ${takers.join(', ')}; --codec ${codec} follows --bitrate`);
  }
  const byRate = knob !== undefined && a.bitrate !== undefined;
  if (byRate && a.quality !== undefined) {
    throw new UsageError(`--codec ${codec} takes --quality (a fixed quality) or --bitrate (the quality follows the rate), not both`);
  }
  const o: ShareOptions = {
    relay: a.relay !== undefined ? parseHostPort('relay', String(a.relay)) : undefined,
    host: String(a.host ?? '0.0.0.0'),
    port: checkPort('port', a.port ?? DEFAULT_PORT, true),
    ...rtspPortOption(a),
    ...httpPortOption(a),
    source: String(a.source ?? 'screen'),
    sourceFormat: a.sourceFormat !== undefined ? checkSourceFormat(a.sourceFormat) : undefined,
    sourceOptions: a.sourceOption !== undefined ? [a.sourceOption].flat().map((v) => parseSourceOption(String(v))) : undefined,
    loop: a.loop === true,
    display: a.display !== undefined ? String(a.display) : undefined,
    region: a.region !== undefined ? parseRegion(String(a.region)) : undefined,
    codec,
    encoder: a.encoder !== undefined ? String(a.encoder) : undefined,
    size: a.size !== undefined ? parseSize('size', String(a.size)) : undefined,
    fps: checkNumber('fps', a.fps ?? DEFAULT_FPS, 1, 120, '30 or 29.97'),
    bitrateKbps: parseBitrate('bitrate', a.bitrate ?? DEFAULT_BITRATE_KBPS),
    gop: checkInt('gop', a.gop ?? DEFAULT_GOP, 1, 10_000),
    quality: knob && !byRate ? checkInt('quality', a.quality ?? knob.default, knob.min, knob.max) : undefined,
    stream: checkStream(a.stream ?? DEFAULT_STREAM),
    ffmpeg: a.ffmpeg !== undefined ? String(a.ffmpeg) : undefined,
    fec: parseFec(a.fec, a.fecMode, a.fecDepth),
    adapt: a.adapt !== false,
    // auto (the default): share picks by the picture's size and the cores (ffmpeg-args autoLayers).
    layers: a.layers === undefined || String(a.layers).trim() === 'auto' ? undefined : checkLayers(a.layers),
    // Off unless given; a flag with no value is the source's own sound (capture/audio.ts).
    audio: parseAudio(a.audio === '' ? true : (a.audio as string | boolean | undefined), String(a.source ?? 'screen')),
    audioRedundancy: checkInt('audio-red', a.audioRed ?? AUDIO_RED_DEFAULT, 0, AUDIO_RED_MAX),
    audioFrameMs: Number(a.audioFrame ?? AUDIO_FRAME_MS_DEFAULT) as AudioFrameMs,
    audioDtx: a.audioDtx !== false,
    key: readSecret('key', a.key, a.keyFile),
    encrypt: readSecret('encrypt', a.encrypt, a.encryptFile),
    push: checkPushUrls(a.push),
    ...commonOptions(a),
  };
  // The server would get ciphertext no player outside udpcast reads.
  if (o.push?.length && o.encrypt !== undefined) throw new UsageError('--push cannot go with --encrypt: the RTSP server would get encrypted pictures that no player outside udpcast can read');
  return checkSecrets(o);
}

/** --source-format: an FFmpeg format name (lavfi, v4l2, pipewire, …). */
function checkSourceFormat(v: unknown): string {
  const s = String(v);
  if (!/^[A-Za-z0-9_]+$/.test(s)) throw new UsageError(`--source-format must be an FFmpeg input format name (e.g. lavfi, v4l2), got ${JSON.stringify(s)}`);
  return s;
}

export function relayOptions(a: Record<string, unknown>): RelayOptions {
  return {
    key: readSecret('key', a.key, a.keyFile),
    watchKey: readSecret('watch-key', a.watchKey, a.watchKeyFile),
    host: String(a.host ?? '0.0.0.0'),
    port: checkPort('port', a.port ?? DEFAULT_PORT, true),
    native: a.native !== false,
    ...rtspPortOption(a),
    ...httpPortOption(a),
    push: parseRelayPush(a.push),
    ...commonOptions(a),
  };
}

export function watchOptions(a: Record<string, unknown>): WatchOptions {
  let target;
  try {
    target = parseHostPort('target', String(a.target ?? `127.0.0.1:${DEFAULT_PORT}`));
  } catch {
    throw new UsageError(`the relay to watch must be HOST[:PORT] with a port 1-65535, got ${String(a.target)}`);
  }
  const o: WatchOptions = {
    encrypt: readSecret('encrypt', a.encrypt, a.encryptFile),
    watchKey: readSecret('watch-key', a.watchKey, a.watchKeyFile),
    target,
    stream: checkStream(a.stream ?? DEFAULT_STREAM),
    player: checkChoice('player', a.player ?? 'ffplay', ['ffplay', 'none'] as const),
    output: checkOutput(a.output),
    latencyMs: a.latency !== undefined ? checkInt('latency', a.latency, 0, 10_000) : undefined,
    audio: a.audio !== false,
    ...commonOptions(a),
  };
  return checkSecrets(o);
}

async function start(c: Command): Promise<Handle> {
  switch (c.name) {
    case 'share':
      if (String(c.args.audio ?? '').trim() === AUDIO_LIST) return listAudio(c.args);
      return startShare(shareOptions(c.args), log);
    case 'relay':
      return startRelay(relayOptions(c.args), log);
    case 'watch':
      return startWatch(watchOptions(c.args), log);
    case 'demo':
      return startDemo(c.args);
    case 'impair':
      return startImpair(impairOptions(c.args), log);
    case 'sdp':
      return printSdp(c.args);
    case 'list':
      return listStreams(c.args);
  }
}

/** `share --audio list`: what --audio can name on this machine, on stdout; nothing is shared. */
async function listAudio(a: Record<string, unknown>): Promise<Handle> {
  const ffmpeg = await locateFfmpeg({ flag: a.ffmpeg !== undefined ? String(a.ffmpeg) : undefined });
  process.stdout.write(`${(await listAudioSources(ffmpeg.path)).join('\n')}\n`);
  return { done: Promise.resolve(0), stop: () => {} };
}

/** Share a test pattern through an embedded relay and watch it, in one process. */
async function startDemo(a: Record<string, unknown>): Promise<Handle> {
  const duration = checkDuration('duration', a.duration);
  const player = checkChoice('player', a.player ?? 'auto', ['auto', 'ffplay', 'none'] as const);
  const withWindow = player === 'ffplay' || (player === 'auto' && !!locateFfplay() && !displayMissing());
  let share;
  // The watch dashboard is the demo's screen; the sharer's numbers appear in it as one line.
  const shareArgs = { ...a, source: 'test', host: '127.0.0.1', size: `${DEFAULT_TEST_SIZE.width}x${DEFAULT_TEST_SIZE.height}`, statsJson: undefined, dashboard: false };
  try {
    share = await startShare(shareOptions(shareArgs), log);
  } catch (err) {
    if (!(err instanceof UsageError && /is in use/.test(err.message)) || a.port === 0) throw err;
    log(`port ${String(a.port ?? DEFAULT_PORT)} is busy; the demo takes any free port instead`);
    share = await startShare(shareOptions({ ...shareArgs, port: 0 }), log);
  }
  const port = share.relay!.address.port;
  const watch = await startWatch(
    watchOptions({ target: `127.0.0.1:${port}`, player: withWindow ? 'ffplay' : 'none', statsJson: a.statsJson, dashboard: a.dashboard, duration }),
    log,
  );
  if (!withWindow) log('no ffplay window (no ffplay or no display): showing statistics only');
  let stopped = false;
  const stop = (code = 0) => {
    if (stopped) return;
    stopped = true;
    watch.stop(code);
    share.stop(code);
  };
  watch.done.then((code) => stop(code));
  if (duration) setTimeout(() => stop(0), duration * 1000).unref();
  return {
    done: Promise.all([watch.done, share.done]).then(([w, s]) => w || s),
    stop,
  };
}

export async function run(c: Command): Promise<number> {
  let handle: Handle;
  try {
    handle = await start(c);
  } catch (err) {
    if (err instanceof UsageError) {
      log(`udpcast ${c.name}: ${nameVariable(err.message, c.environment)}`);
      return 2;
    }
    log(`udpcast ${c.name}: ${(err as Error).message}`);
    return 1;
  }
  // `on`, not `once`: a listener that removes itself while the signal is handled would leave the
  // child-process registry believing it is alone and exiting with the signal's code first.
  const onSignal = () => handle.stop(0);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal); // the terminal closed: end as cleanly as on Ctrl-C
  const code = await handle.done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onSignal);
  return code;
}

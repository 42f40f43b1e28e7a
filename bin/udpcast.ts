#!/usr/bin/env node
/**
 * udpcast's command line: turns argv (and UDPCAST_* environment variables) into one typed options
 * object per command and hands it to src/apps. Nothing else happens here.
 */
import yargs, { type Options } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { run, type Command } from '../src/apps/main.ts';
import { IMPAIRMENT_HELP } from '../src/apps/impair.ts';
import { refuseUrl, WATCH_TARGET } from '../src/apps/options.ts';
import { CODEC_NAMES, DEFAULT_CODEC } from '../src/codecs/registry.ts';
import { DTX_HANGOVER_MS, DTX_KEEPALIVE_MS } from '../src/codecs/opus/dtx.ts';
import {
  AUDIO_FRAME_CHOICES,
  AUDIO_FRAME_MS_DEFAULT,
  AUDIO_RED_DEFAULT,
  AUDIO_RED_MAX,
  DEFAULT_BITRATE_KBPS,
  DEFAULT_FPS,
  DEFAULT_GOP,
  DEFAULT_MJPEG_QUALITY,
  DEFAULT_PORT,
  HTTP_PORT_DEFAULT, RTSP_PORT_DEFAULT,
  DEFAULT_STREAM,
} from '../src/defaults.ts';

type Table = Record<string, Options>;

const CODEC_HELP = 'h264: efficient; mjpeg: each picture stands alone, so a loss spoils one picture only, at several times the bitrate';

const common: Table = {
  'stats-json': { type: 'string', describe: 'append one JSON object of statistics per second to FILE' },
  dashboard: { type: 'boolean', default: true, describe: 'live dashboard on a terminal (--no-dashboard: a summary line on stderr)' },
  duration: { type: 'number', describe: 'stop after S seconds' },
};

const share: Table = {
  ...common,
  relay: { type: 'string', describe: 'publish to this relay (HOST:PORT) instead of running one here' },
  port: { type: 'number', default: DEFAULT_PORT, describe: 'UDP port of the embedded relay' },
  host: { type: 'string', default: '0.0.0.0', describe: 'address the embedded relay listens on' },
  'rtsp-port': { type: 'number', describe: `TCP port of the embedded relay's RTSP server, for players without udpcast (default ${RTSP_PORT_DEFAULT}, skipped with a line if taken); 0: none` },
  http: { type: 'number', describe: `TCP port of the embedded relay's web page: viewers with only a browser open http://HOST:PORT/ (default ${HTTP_PORT_DEFAULT}, skipped with a line if taken); 0: none` },
  push: {
    type: 'string',
    array: true,
    nargs: 1,
    describe: 'also publish the stream to an RTSP server that records (MediaMTX, Wowza, ffmpeg -rtsp_flags listen): rtsp://[USER:PASSWORD@]HOST[:PORT]/PATH, RTP interleaved on its TCP connection (?transport=udp: over UDP); retried with back-off while it is away; repeatable; not for an encrypted share',
  },
  source: {
    type: 'string',
    default: 'screen',
    describe: "'screen', 'test' (synthetic pattern), a video file (played in real time), an image (shown as a still) or any FFmpeg input",
  },
  'source-format': { type: 'string', describe: "FFmpeg input format for --source (its -f), e.g. lavfi or v4l2" },
  'source-option': {
    type: 'string',
    array: true,
    nargs: 1,
    describe: 'FFmpeg input option NAME=VALUE for --source (its -NAME VALUE), repeatable, e.g. video_size=1280x720',
  },
  loop: { type: 'boolean', describe: 'play a --source file again and again' },
  display: { type: 'string', describe: 'X display to grab (Linux), default $DISPLAY' },
  region: { type: 'string', describe: 'share only WxH+X+Y of the screen (or of a file)' },
  codec: { choices: CODEC_NAMES, default: DEFAULT_CODEC, describe: CODEC_HELP },
  encoder: { type: 'string', describe: 'FFmpeg H.264 encoder: libx264, h264_nvenc, h264_vaapi, h264_qsv, h264_videotoolbox' },
  size: { type: 'string', describe: 'scale to WxH (e.g. 1280x720)' },
  fps: { type: 'number', default: DEFAULT_FPS, describe: 'frames per second, 1-120 (fractions allowed: 29.97)' },
  // No yargs defaults for these two: with --codec mjpeg, whether --bitrate was given decides which one rules.
  bitrate: {
    type: 'string',
    describe: `bitrate, e.g. 2500k or 4M (default ${DEFAULT_BITRATE_KBPS}k for H.264); with --codec mjpeg the quality of each picture follows it (down to the lowest; it says when that is not enough), instead of --quality`,
  },
  gop: { type: 'number', default: DEFAULT_GOP, describe: 'frames between keyframes' },
  quality: { type: 'number', describe: `MJPEG quality, 2 (best) - 31 (default ${DEFAULT_MJPEG_QUALITY}, unless --bitrate is given)` },
  stream: { type: 'string', default: DEFAULT_STREAM, describe: 'stream name' },
  ffmpeg: { type: 'string', describe: 'path of the ffmpeg binary (else $FFMPEG_PATH, PATH, the bundled one)' },
  key: { type: 'string', describe: 'passphrase shared with the relay: every datagram is signed (relay needs the same --key)' },
  'key-file': { type: 'string', describe: 'read --key from the first line of FILE' },
  encrypt: { type: 'string', describe: 'passphrase shared with viewers only: pictures are AES-GCM encrypted end to end' },
  'encrypt-file': { type: 'string', describe: 'read --encrypt from the first line of FILE' },
  fec: { type: 'string', describe: 'forward error correction: PCT of parity (2-50), repairs isolated losses without a round trip' },
  'fec-mode': { choices: ['row', 'column', '2d'], describe: 'with --fec: row (default) repairs single losses; column bursts up to --fec-depth; 2d both' },
  'fec-depth': { type: 'number', describe: 'with --fec-mode column or 2d: the burst length repaired (default up to 5)' },
  layers: {
    type: 'string',
    describe: 'quality layers from one capture, 1-3: the full picture at --bitrate, half size at 40%, quarter size at 15% (MJPEG: smaller pictures at --quality); the relay sends each viewer the best its path takes. Default auto: as many as keep the smallest 180 lines tall and the encoding within half the cores; 1 for MJPEG, a GPU encoder or a size not known; the log says what it chose',
  },
  audio: {
    type: 'string',
    // The one option whose value may be left out (requiringValues).
    requiresArg: false,
    describe: "sound too, as Opus. Off by default, for the screen too (privacy: a screen share does not send what the machine plays unasked). list: print the sources this machine has (what each NAME can be) and exit; no value: the file's own sound with --source FILE, the beep with --source test, the desktop's sound with the screen (Linux: PulseAudio/PipeWire's default monitor); test: a 1 kHz beep each second while the test pattern flashes; NAME: a PulseAudio source, alsa:hw:N, a DirectShow device (Windows: enable \"Stereo Mix\" for the desktop's sound) or an AVFoundation device (macOS: a loopback device such as BlackHole)",
  },
  'audio-frame': {
    choices: AUDIO_FRAME_CHOICES,
    describe: `with --audio: ms of sound per Opus packet (default ${AUDIO_FRAME_MS_DEFAULT}): 10 codes CELT only and reaches the ear sooner, at twice the packets; 20 can use SILK for speech`,
  },
  'audio-red': {
    type: 'number',
    describe: `with --audio: earlier sound packets each packet repeats (RFC 2198 RED), 0-${AUDIO_RED_MAX} (default ${AUDIO_RED_DEFAULT}): a lost packet's sound comes with the next one, no round trip; each copy adds the sound's bitrate again`,
  },
  'audio-dtx': {
    type: 'boolean',
    default: true,
    describe: `with --audio: digital silence (a muted or paused source) is not sent after its first ${DTX_HANGOVER_MS} ms, but for a packet every ${DTX_KEEPALIVE_MS} ms (DTX, RFC 7587); viewers fill it with silence. --no-audio-dtx sends every packet`,
  },
  adapt: {
    type: 'boolean',
    default: true,
    describe: 'fit the stream to the path: the relay reports what arrived when (RFC 8888), and a narrower path lowers the bitrate below --bitrate (never above) and paces packets; --no-adapt sends --bitrate whatever the path',
  },
};

const relay: Table = {
  ...common,
  port: { type: 'number', default: DEFAULT_PORT, describe: 'UDP port for publishers and viewers' },
  host: { type: 'string', default: '0.0.0.0', describe: 'address to listen on' },
  key: { type: 'string', describe: 'accept only sharers that sign with this passphrase' },
  'key-file': { type: 'string', describe: 'read --key from the first line of FILE' },
  'watch-key': { type: 'string', describe: 'accept only viewers that know this passphrase' },
  'watch-key-file': { type: 'string', describe: 'read --watch-key from the first line of FILE' },
  native: {
    type: 'boolean',
    default: true,
    describe: 'datagrams in and out a batch per system call (recvmmsg/sendmmsg) when the native helper is built (Linux); --no-native: node:dgram, one call per datagram',
  },
  'rtsp-port': { type: 'number', describe: `TCP port of the RTSP server: every stream is rtsp://HOST:PORT/STREAM for ffplay, VLC, GStreamer (default ${RTSP_PORT_DEFAULT}, skipped with a line if it is taken); 0: none` },
  http: { type: 'number', describe: `TCP port of the HTTP server: a page per stream for browsers (WebRTC; WHEP at /whep/STREAM), /streams.json (udpcast list), /metrics for Prometheus (default ${HTTP_PORT_DEFAULT}, skipped with a line if it is taken); 0: none` },
  push: {
    type: 'string',
    array: true,
    nargs: 1,
    describe: 'STREAM=rtsp://[USER:PASSWORD@]HOST[:PORT]/PATH: publish a stream this relay carries to an RTSP server that records (MediaMTX, Wowza, ffmpeg -rtsp_flags listen), TCP interleaved (?transport=udp: over UDP), retried with back-off; repeatable',
  },
};

const watch: Table = {
  ...common,
  stream: { type: 'string', default: DEFAULT_STREAM, describe: 'stream name' },
  player: {
    choices: ['ffplay', 'none'],
    default: 'ffplay',
    describe: 'ffplay: a window, always live (a player that falls behind is restarted); none: no window (with --output)',
  },
  output: {
    type: 'string',
    nargs: 1,
    describe: "also write to FILE: .mkv or .mp4 (timestamped, playable even if watch is killed), .h264 or .mjpeg (raw); '-': Matroska on stdout, for a pipe",
  },
  encrypt: { type: 'string', describe: "the sharer's --encrypt passphrase, to decrypt the pictures" },
  'encrypt-file': { type: 'string', describe: 'read --encrypt from the first line of FILE' },
  'watch-key': { type: 'string', describe: "the relay's --watch-key, when it has one" },
  'watch-key-file': { type: 'string', describe: 'read --watch-key from the first line of FILE' },
  latency: { type: 'number', describe: 'ms (0-10000) a lost packet may hold frames back while it is re-sent (default: from RTT and loss, 40-500)' },
  audio: { type: 'boolean', default: true, describe: "keep the sharer's sound (share --audio) in the window, in .mkv and .mp4 recordings and on --output -; --no-audio leaves it out" },
};

const demo: Table = {
  ...common,
  port: { type: 'number', default: DEFAULT_PORT, describe: 'UDP port of the embedded relay (0: any free port)' },
  codec: { choices: CODEC_NAMES, default: DEFAULT_CODEC, describe: CODEC_HELP },
  player: { choices: ['auto', 'ffplay', 'none'], default: 'auto', describe: 'auto: ffplay when it and a display are present' },
};

const impair: Table = {
  listen: { type: 'string', demandOption: true, describe: 'PORT (every interface) or HOST:PORT to receive on' },
  to: { type: 'string', demandOption: true, describe: 'HOST:PORT to forward to (replies come back)' },
  seed: { type: 'number', describe: 'random seed, for a repeatable run (default: random, printed)' },
  duration: { type: 'number', describe: 'stop after S seconds' },
  ...Object.fromEntries(
    IMPAIRMENT_HELP.flatMap(([name, describe]) => [
      [name, { type: 'string', describe: `${describe}, both directions` }],
      [`up-${name}`, { type: 'string', hidden: true }],
      [`down-${name}`, { type: 'string', hidden: true }],
    ]),
  ),
};

const sdp: Table = {
  // No yargs default: whether --stream was given decides whether it or an rtsp:// target's path names the stream.
  stream: { type: 'string', describe: `stream name (default: the path of an rtsp:// target, else ${DEFAULT_STREAM}); given, it wins over the path` },
  'watch-key': { type: 'string', describe: 'the relay\'s --watch-key, for its RTSP server (Digest: never sent as it is)' },
  'watch-key-file': { type: 'string', describe: 'read --watch-key from the first line of FILE' },
};

const list: Table = {
  'watch-key': { type: 'string', describe: 'the relay\'s --watch-key, sent as a Bearer token' },
  'watch-key-file': { type: 'string', describe: 'read --watch-key from the first line of FILE' },
};

/**
 * Every option that takes a value refuses to be given without one: yargs would otherwise read
 * `--relay --duration 6` as an empty --relay and go on with its default. Only an option whose
 * table says `requiresArg: false` (share --audio) may stand alone; booleans never take one.
 */
function requiringValues(table: Table): Table {
  return Object.fromEntries(Object.entries(table).map(([k, o]) => [k, o.type === 'boolean' ? o : { requiresArg: true, ...o }]));
}

// In --help's order, which the message for a missing command follows.
const TABLES: Record<Command['name'], Table> = Object.fromEntries(
  Object.entries({ share, relay, watch, sdp, list, demo, impair }).map(([name, t]) => [name, requiringValues(t)]),
) as Record<Command['name'], Table>;
const NAMES = Object.keys(TABLES);
const NAME_A_COMMAND = `name a command: ${NAMES.slice(0, -1).join(', ')} or ${NAMES.at(-1)} (udpcast --help)`;

const envName = (option: string) => `UDPCAST_${option.toUpperCase().replace(/-/g, '_')}`;
const camel = (option: string) => option.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * UDPCAST_* variables: each command takes those that name one of its own options, so a variable
 * exported for one command (UDPCAST_KEY for share and relay) does not make another (watch) fail as
 * an unknown option. Variables that name no option at all (UDPCAST_VAAPI_DEVICE) are left alone.
 * UDPCAST_NO_DASHBOARD=1 means --no-dashboard.
 */
function scopeEnvironment(command: string | undefined): void {
  const any = new Set(Object.values(TABLES).flatMap((t) => Object.keys(t).map(envName)));
  const mine = new Set(Object.keys(TABLES[command as Command['name']] ?? {}).map(envName));
  const noDashboard = process.env.UDPCAST_NO_DASHBOARD;
  if (noDashboard !== undefined) {
    delete process.env.UDPCAST_NO_DASHBOARD;
    if (!/^(0|false|no)?$/i.test(noDashboard)) process.env.UDPCAST_DASHBOARD = 'false';
  }
  for (const k of Object.keys(process.env)) {
    if (any.has(k) && !mine.has(k)) delete process.env[k];
  }
}

/**
 * `--bitrate -1M`: yargs reads a value that starts with '-' and is not a plain number as short
 * flags ("Unknown arguments: 1, M"). Joined as `--bitrate=-1M`, it reaches the option's own check,
 * whose one line names the option and what it takes.
 */
function joinDashValues(args: string[], table: Table): string[] {
  const takesValue = new Set(Object.entries(table).filter(([, o]) => o.type !== 'boolean').flatMap(([k]) => [k, camel(k)]));
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--') return [...out, ...args.slice(i)];
    const name = /^--([^=]+)$/.exec(args[i])?.[1];
    const next = args[i + 1];
    if (name !== undefined && takesValue.has(name) && next !== undefined && /^-\.?\d/.test(next)) out.push(`${args[i]}=${args[++i]}`);
    else out.push(args[i]);
  }
  return out;
}

/**
 * Options whose value comes from a UDPCAST_* variable, not the command line, by option name: a bad
 * value is then named as the variable (main.ts), since the person never typed the option.
 */
function fromEnvironment(args: string[], table: Table): Record<string, string> {
  const given = (k: string) =>
    [k, camel(k)].some((n) => args.some((a) => a === `--${n}` || a === `--no-${n}` || a.startsWith(`--${n}=`)));
  return Object.fromEntries(Object.keys(table).filter((k) => process.env[envName(k)] !== undefined && !given(k)).map((k) => [k, envName(k)]));
}

/**
 * An option given twice (`--port 6105 --port 6106`, a shell alias then the command line) takes the
 * last value, as most command lines do; yargs would hand both over as a list.
 */
function lastWins(a: Record<string, unknown>, table: Table): Record<string, unknown> {
  const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  for (const [k, v] of Object.entries(a)) {
    const o = table[k] ?? table[kebab(k)];
    if (o && !o.array && Array.isArray(v)) a[k] = v.at(-1);
  }
  return a;
}

const command = hideBin(process.argv).find((a) => !a.startsWith('-')) as Command['name'] | undefined;
/** The one line for an option given without its value (`--relay --duration 6`, `--relay=`). */
const needsValue = (option: string) => `--${option} needs a value (udpcast ${command ? `${command} ` : ''}--help)`;
const table: Table = TABLES[command!] ?? {};
const argv = joinDashValues(hideBin(process.argv), table);
// `--relay=` is a value too, an empty one, which yargs takes for the default (a string) or 0 (a
// number: `relay --port=` listened on a random port): refused as a missing value is.
// (share --audio, whose value may be left out, may be left empty too.)
const emptied = argv.find((a) => /^--[\w-]+=$/.test(a) && table[a.slice(2, -1)]?.requiresArg !== false);
if (emptied) {
  process.stderr.write(`udpcast: ${needsValue(emptied.slice(2, -1))}\n`);
  process.exit(2);
}
scopeEnvironment(command);
const environment = fromEnvironment(argv, table);

let chosen: Command | undefined;
const choose = (name: Command['name']) => (a: Record<string, unknown>) => {
  chosen = { name, args: lastWins(a, TABLES[name]), environment };
};

const parser = yargs(argv)
  .scriptName('udpcast')
  .usage('$0 <command> [options]\n\nLive screen sharing over UDP: share → relay → watch, standard RTP/RTCP on one port.')
  .env('UDPCAST')
  .command(
    'share',
    'capture the screen (or a test pattern), encode it with FFmpeg and publish it',
    (y) =>
      y
        .options(TABLES.share)
        // Each example fits one line of an 80-column help: the command within half of it (yargs's
        // example column), the description within the rest.
        .example('$0 share', 'share the screen; it prints what viewers run')
        .example('$0 share --source test', 'a moving test pattern, no screen needed')
        .example('$0 share --relay relay:5004', 'publish through a separate udpcast relay')
        .example('$0 share --fec 10', '10% parity: repairs with no round trip')
        .example('$0 share --audio list', 'the sound sources --audio can name here'),
    choose('share'),
  )
  .command(
    'relay',
    'receive streams and fan them out to every subscribed viewer',
    (y) =>
      y
        .options(TABLES.relay)
        .example('$0 relay --port 5004', 'relay every stream published to UDP 5004')
        .example('$0 relay --key-file relay.key', 'only sharers with the key may publish')
        .example('$0 relay --rtsp-port 8554', 'players open rtsp://HOST:8554/main'),
    choose('relay'),
  )
  .command(
    'watch [target]',
    'subscribe to a stream and play it with ffplay (or write it to a file)',
    (y) =>
      y
        .positional('target', {
          type: 'string',
          default: `127.0.0.1:${DEFAULT_PORT}`,
          describe: 'relay or sharer, HOST[:PORT]',
          // Here, not in main.ts's watchOptions, whose one line for a bad target would hide what a URL is for.
          coerce: (v: unknown) => {
            refuseUrl(String(v), WATCH_TARGET);
            return v;
          },
        })
        .options(TABLES.watch)
        .example('$0 watch 192.168.1.20', 'the sharer at 192.168.1.20:5004')
        .example('$0 watch relay --output talk.mkv', 'watch, and record in real time')
        .example('$0 watch relay:5004 --player none --output - | ffplay -probesize 32 -', '')
        .epilog(
          'The last example pipes the stream (Matroska, stamped on arrival) into any player. Latency on ' +
            'the dashboard is capture → frame handed to the player; the display adds its own refresh (up ' +
            'to one refresh interval, ~17 ms at 60 Hz).',
        ),
    choose('watch'),
  )
  .command(
    'sdp [target]',
    'print the session description (SDP) of a stream, from a relay\'s RTSP server',
    (y) =>
      y
        .positional('target', { type: 'string', default: `127.0.0.1:${RTSP_PORT_DEFAULT}`, describe: 'the relay (or sharer), HOST[:RTSP_PORT] or rtsp://HOST[:PORT]/STREAM' })
        .options(TABLES.sdp)
        .example('$0 sdp relay --stream team', 'what team carries: codec, parameters, sound'),
    choose('sdp'),
  )
  .command(
    'list [target]',
    'list the streams a relay carries now, from its HTTP server',
    (y) =>
      y
        .positional('target', { type: 'string', default: `127.0.0.1:${HTTP_PORT_DEFAULT}`, describe: 'the relay, HOST[:HTTP_PORT] or http://HOST[:PORT]/...' })
        .options(TABLES.list)
        .example('$0 list relay.example.org', 'codec, size, sound, viewers, bitrate of each'),
    choose('list'),
  )
  .command(
    'demo',
    'share a test pattern, relay it and watch it, all in this process',
    (y) => y.options(TABLES.demo).example('$0 demo --duration 10', 'ten seconds of the whole pipeline on this machine'),
    choose('demo'),
  )
  .command(
    'impair',
    'a UDP proxy that loses, delays, reorders, duplicates and rate-limits datagrams, both ways',
    (y) =>
      y
        .options(TABLES.impair)
        // Too long for yargs's example column: each on a line of its own, explained below.
        .example('$0 impair --listen 6000 --to 127.0.0.1:5004 --loss 5% --delay 10ms', '')
        .example('$0 impair --listen 6000 --to relay:5004 --down-loss 2% --down-burst 3', '')
        .epilog(
          'In the first example viewers watch 127.0.0.1:6000 through a lossy, slower link; in the second, ' +
            'losses come in bursts, towards the viewers only (--seed N repeats a run). Each impairment also has ' +
            '--up-NAME (client → target) and --down-NAME (target → client), which override the shared value.',
        ),
    choose('impair'),
  )
  .demandCommand(1, NAME_A_COMMAND)
  .recommendCommands()
  .strict()
  .help()
  .alias('h', 'help')
  .version()
  // The terminal's width; through a pipe, $COLUMNS if set (as `COLUMNS=80 udpcast --help | less`).
  .wrap(Math.min(110, process.stdout.columns || Number(process.env.COLUMNS) || 100))
  .fail((msg, err) => {
    // One line, whatever yargs composed (its choice errors span several).
    let line = String(msg ?? err?.message).replace(/\s*\n\s*/g, ' ');
    // yargs's words for a mistyped command or a missing value, in ours.
    const known = (NAMES as Array<string | undefined>).includes(command);
    const suggested = /^Did you mean (\S+)\?$/.exec(line)?.[1];
    if (suggested) line = `unknown command ${JSON.stringify(command)}: did you mean ${suggested}? (udpcast --help)`;
    else if (!known && command !== undefined && /^Unknown arguments?: /.test(line)) line = `unknown command ${JSON.stringify(command)}: ${NAME_A_COMMAND}`;
    const missing = /^Not enough arguments following: (\S+)$/.exec(line)?.[1];
    if (missing) line = needsValue(missing);
    // A choice from a UDPCAST_* variable: say which one, as main.ts does for the other checks.
    const variable = Object.entries(environment).find(([k]) => line.includes(`Argument: ${k},`))?.[1];
    if (variable) line += ` (from ${variable})`;
    process.stderr.write(`udpcast: ${line}\n`);
    process.exit(2);
  });

await parser.parseAsync();
if (chosen) {
  const code = await run(chosen);
  process.exitCode = code;
  // Everything we own is closed by now; a stray handle must not keep a finished command alive.
  setTimeout(() => process.exit(code), 2000).unref();
}

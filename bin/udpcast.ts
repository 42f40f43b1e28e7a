#!/usr/bin/env node
/**
 * udpcast's command line: turns argv (and UDPCAST_* environment variables) into one typed options
 * object per command and hands it to src/cli. Nothing else happens here.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { run, type Command } from '../src/cli/main.ts';
import {
  DEFAULT_BITRATE_KBPS,
  DEFAULT_FPS,
  DEFAULT_GOP,
  DEFAULT_MJPEG_QUALITY,
  DEFAULT_PORT,
  DEFAULT_STREAM,
} from '../src/defaults.ts';

const common = (y: Argv) =>
  y
    .option('stats-json', { type: 'string', describe: 'append one JSON object of statistics per second to FILE' })
    .option('dashboard', { type: 'boolean', default: true, describe: 'live dashboard on a terminal (--no-dashboard: a summary line on stderr)' })
    .option('duration', { type: 'number', describe: 'stop after S seconds' });

let chosen: Command | undefined;

const parser = yargs(hideBin(process.argv))
  .scriptName('udpcast')
  .usage('$0 <command> [options]\n\nLive screen sharing over UDP: share → relay → watch, standard RTP/RTCP on one port.')
  .env('UDPCAST')
  .command(
    'share',
    'capture the screen (or a test pattern), encode it with FFmpeg and publish it',
    (y) =>
      common(y)
        .option('relay', { type: 'string', describe: 'publish to this relay (HOST:PORT) instead of running one here' })
        .option('port', { type: 'number', default: DEFAULT_PORT, describe: 'UDP port of the embedded relay' })
        .option('host', { type: 'string', default: '0.0.0.0', describe: 'address the embedded relay listens on' })
        .option('source', { type: 'string', default: 'screen', describe: "'screen', 'test' (synthetic pattern) or any FFmpeg input" })
        .option('display', { type: 'string', describe: 'X display to grab (Linux), default $DISPLAY' })
        .option('region', { type: 'string', describe: 'grab only WxH+X+Y of the screen' })
        .option('codec', { choices: ['h264', 'mjpeg'] as const, default: 'h264' as const })
        .option('encoder', { type: 'string', describe: 'FFmpeg H.264 encoder: libx264, h264_nvenc, h264_vaapi, h264_qsv, h264_videotoolbox' })
        .option('size', { type: 'string', describe: 'scale to WxH (e.g. 1280x720)' })
        .option('fps', { type: 'number', default: DEFAULT_FPS, describe: 'frames per second, 1-120' })
        .option('bitrate', { type: 'string', default: `${DEFAULT_BITRATE_KBPS}k`, describe: 'video bitrate, e.g. 2500k or 4M' })
        .option('gop', { type: 'number', default: DEFAULT_GOP, describe: 'frames between keyframes' })
        .option('quality', { type: 'number', default: DEFAULT_MJPEG_QUALITY, describe: 'MJPEG quality, 2 (best) - 31' })
        .option('stream', { type: 'string', default: DEFAULT_STREAM, describe: 'stream name' })
        .option('ffmpeg', { type: 'string', describe: 'path of the ffmpeg binary (else $FFMPEG_PATH, PATH, the bundled one)' })
        .option('key', { type: 'string', describe: 'passphrase shared with the relay: every datagram is signed (relay needs the same --key)' })
        .option('key-file', { type: 'string', describe: 'read --key from the first line of FILE' })
        .option('encrypt', { type: 'string', describe: 'passphrase shared with viewers only: pictures are AES-GCM encrypted end to end' })
        .option('fec', { type: 'string', describe: 'forward error correction: PCT of parity (2-50), repairs isolated losses without a round trip' })
        .option('fec-mode', { choices: ['row', 'column', '2d'] as const, describe: 'row: single losses; column: bursts up to --fec-depth; 2d: both (default row)' })
        .option('fec-depth', { type: 'number', describe: 'burst length column FEC repairs (default up to 5)' })
        .example('$0 share', 'share the screen; viewers run: udpcast watch THIS_HOST')
        .example('$0 share --source test --duration 10', 'a moving test pattern for 10 s, no screen needed')
        .example('$0 share --relay relay.example.org:5004 --stream demo', 'publish through a separate relay')
        .example('$0 share --fec 10', 'add 10% parity: isolated losses heal without waiting a round trip'),
    (a) => {
      chosen = { name: 'share', args: a };
    },
  )
  .command(
    'relay',
    'receive streams and fan them out to every subscribed viewer',
    (y) =>
      common(y)
        .option('port', { type: 'number', default: DEFAULT_PORT, describe: 'UDP port for publishers and viewers' })
        .option('host', { type: 'string', default: '0.0.0.0', describe: 'address to listen on' })
        .option('key', { type: 'string', describe: 'accept only sharers that sign with this passphrase' })
        .option('key-file', { type: 'string', describe: 'read --key from the first line of FILE' })
        .option('watch-key', { type: 'string', describe: 'accept only viewers that know this passphrase' })
        .example('$0 relay --port 5004', 'relay on UDP 5004 for every stream published to it')
        .example('$0 relay --key-file /etc/udpcast.key', 'only sharers with the key may publish'),
    (a) => {
      chosen = { name: 'relay', args: a };
    },
  )
  .command(
    'watch [target]',
    'subscribe to a stream and play it with ffplay (or write it to a file)',
    (y) =>
      common(y)
        .positional('target', { type: 'string', default: `127.0.0.1:${DEFAULT_PORT}`, describe: 'relay or sharer, HOST[:PORT]' })
        .option('stream', { type: 'string', default: DEFAULT_STREAM, describe: 'stream name' })
        .option('player', { choices: ['ffplay', 'none'] as const, default: 'ffplay' as const })
        .option('output', { type: 'string', nargs: 1, describe: "write the reassembled stream (.h264 or .mjpeg) to FILE, '-' for stdout" })
        .option('encrypt', { type: 'string', describe: "the sharer's --encrypt passphrase, to decrypt the pictures" })
        .option('watch-key', { type: 'string', describe: "the relay's --watch-key, when it has one" })
        .option('latency', { type: 'number', describe: 'ms a lost packet may hold frames back while it is re-sent (default: 3×RTT + 20, 40-500)' })
        .example('$0 watch 192.168.1.20', "watch the sharer at 192.168.1.20's default port")
        .example('$0 watch relay:5004 --player none --output - | ffplay -f h264 -', 'pipe into any player'),
    (a) => {
      chosen = { name: 'watch', args: a };
    },
  )
  .command(
    'demo',
    'share a test pattern, relay it and watch it, all in this process',
    (y) =>
      common(y)
        .option('port', { type: 'number', default: DEFAULT_PORT, describe: 'UDP port of the embedded relay (0: any free port)' })
        .option('codec', { choices: ['h264', 'mjpeg'] as const, default: 'h264' as const })
        .option('player', { choices: ['auto', 'ffplay', 'none'] as const, default: 'auto' as const, describe: 'auto: ffplay when it and a display are present' })
        .example('$0 demo --duration 10', 'ten seconds of the whole pipeline on this machine'),
    (a) => {
      chosen = { name: 'demo', args: a };
    },
  )
  .command(
    'impair',
    'a UDP proxy that loses, delays, reorders, duplicates and rate-limits datagrams, both ways',
    (y) => {
      y.option('listen', { type: 'string', demandOption: true, describe: 'PORT (every interface) or HOST:PORT to receive on' })
        .option('to', { type: 'string', demandOption: true, describe: 'HOST:PORT to forward to (replies come back)' })
        .option('seed', { type: 'number', describe: 'random seed, for a repeatable run (default: random, printed)' })
        .option('duration', { type: 'number', describe: 'stop after S seconds' });
      const impairments: [string, string][] = [
        ['loss', 'datagrams lost at random, e.g. 5%'],
        ['burst', 'a loss takes LEN datagrams in a row (mean loss stays --loss)'],
        ['delay', 'added one-way delay, e.g. 10ms'],
        ['jitter', 'random extra delay 0..J, order kept, e.g. 20ms'],
        ['reorder', 'datagrams held back past later ones, e.g. 1%'],
        ['reorder-gap', 'how long a reordered datagram is held back (default 20ms)'],
        ['duplicate', 'datagrams sent twice, e.g. 1%'],
        ['rate', 'bandwidth limit in bit/s, e.g. 10M'],
        ['queue', 'datagrams that may wait for the rate limit (default 100)'],
      ];
      for (const [name, describe] of impairments) {
        y.option(name, { type: 'string', describe: `${describe}, both directions` })
          .option(`up-${name}`, { type: 'string', hidden: true })
          .option(`down-${name}`, { type: 'string', hidden: true });
      }
      return y
        .epilog('Each impairment also has --up-NAME (client → target) and --down-NAME (target → client), which override the shared value.')
        .example('$0 impair --listen 6000 --to 127.0.0.1:5004 --loss 5% --delay 10ms', 'viewers watch 127.0.0.1:6000 through a lossy link')
        .example('$0 impair --listen 6000 --to relay:5004 --down-loss 2% --down-burst 3 --seed 7', 'bursty loss towards the viewers only, repeatable');
    },
    (a) => {
      chosen = { name: 'impair', args: a };
    },
  )
  .demandCommand(1, 'name a command: share, relay, watch, demo or impair (udpcast --help)')
  .strict()
  .help()
  .alias('h', 'help')
  .version()
  .wrap(Math.min(110, process.stdout.columns || 100))
  .fail((msg, err) => {
    process.stderr.write(`udpcast: ${msg ?? err?.message}\n`);
    process.exit(2);
  });

await parser.parseAsync();
if (chosen) {
  const code = await run(chosen);
  process.exitCode = code;
  // Everything we own is closed by now; a stray handle must not keep a finished command alive.
  setTimeout(() => process.exit(code), 2000).unref();
}

/**
 * `share --audio list`: the sound sources a person can name with `--audio` on this machine.
 * Each platform is asked in the words its capture uses, and the answers are parsed by pure
 * functions (tested with FFmpeg's and arecord's own output formats):
 *
 *   Linux    ffmpeg -hide_banner -sources pulse     PulseAudio/PipeWire sources; a monitor is what
 *            ffmpeg -hide_banner -sinks pulse       an output plays, the default output's is what
 *                                                   `--audio` alone captures (@DEFAULT_MONITOR@)
 *            LC_ALL=C arecord -l                    ALSA capture devices, as alsa:hw:CARD,DEV (else
 *            ffmpeg -hide_banner -sources alsa      FFmpeg's ALSA hints, their hw: entries)
 *   Windows  ffmpeg -hide_banner -list_devices true -f dshow -i dummy          (on stderr)
 *   macOS    ffmpeg -hide_banner -f avfoundation -list_devices true -i ""      (on stderr)
 *
 * FFmpeg's `-sources` prints (fftools, print_device_list), on stdout:
 *   Auto-detected sources for pulse:
 *   * alsa_input.pci-0000_00_1f.3.analog-stereo [Built-in Audio Analog Stereo] (none)
 *     alsa_output.pci-0000_00_1f.3.analog-stereo.monitor [Monitor of Built-in Audio Analog Stereo] (none)
 * with '*' on the default, or "Cannot list sources: REASON" when the server does not answer.
 */
import { PROBE_TIMEOUT_MS } from '../defaults.ts';
import { OwnedProcess, type SpawnFn } from '../util/child.ts';

/** One entry of FFmpeg's `-sources`/`-sinks` listing. */
export interface ListedDevice {
  name: string;
  description: string;
  isDefault: boolean;
}

export interface DeviceListing {
  /** False when FFmpeg printed no listing at all: this build lacks the device. */
  supported: boolean;
  devices: ListedDevice[];
  /** FFmpeg's reason when it could not list ("Generic error in an external library"). */
  error?: string;
}

/** FFmpeg's `-sources`/`-sinks` output (see the header comment). */
export function parseDeviceListing(text: string): DeviceListing {
  const out: DeviceListing = { supported: false, devices: [] };
  for (const line of text.split(/\r?\n/)) {
    if (/^Auto-detected (sources|sinks) for /.test(line)) {
      out.supported = true;
      continue;
    }
    const cannot = /^Cannot list (?:sources|sinks): (.*)$/.exec(line);
    if (cannot) {
      out.supported = true;
      out.error = cannot[1].trim();
      continue;
    }
    // "* NAME [DESCRIPTION] (MEDIA TYPES)": the name ends at the first " [", the description at
    // the last "] (" (a description may hold brackets of its own).
    const m = /^([* ]) (.+?) \[(.*)\] \(([^()]*)\)$/.exec(line);
    if (m) out.devices.push({ name: m[2], description: m[3], isDefault: m[1] === '*' });
  }
  return out;
}

/** One capture device of `arecord -l`. */
export interface AlsaCapture {
  card: number;
  device: number;
  cardName: string;
  deviceName: string;
}

/**
 * `LC_ALL=C arecord -l`:
 *   **** List of CAPTURE Hardware Devices ****
 *   card 0: PCH [HDA Intel PCH], device 0: ALC3246 Analog [ALC3246 Analog]
 *     Subdevices: 1/1
 */
export function parseArecordList(text: string): AlsaCapture[] {
  const out: AlsaCapture[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^card (\d+): \S+ \[(.*)\], device (\d+): .*?\[(.*)\]\s*$/.exec(line);
    if (m) out.push({ card: Number(m[1]), device: Number(m[3]), cardName: m[2].trim(), deviceName: m[4].trim() });
  }
  return out;
}

/**
 * DirectShow's audio devices from `-list_devices true -f dshow -i dummy` (stderr). FFmpeg 4.4 and
 * later put the kind after each name; earlier ones print a section header per kind:
 *   [dshow @ 0000021a] "Microphone (Realtek(R) Audio)" (audio)
 *   [dshow @ 0000021a]   Alternative name "@device_cm_{33D9A762-…}\wave_{…}"
 * or
 *   [dshow @ 0000021a] DirectShow audio devices
 *   [dshow @ 0000021a]  "Microphone (Realtek(R) Audio)"
 */
export function parseDshowAudio(text: string): string[] {
  const out: string[] = [];
  let section: 'audio' | 'video' | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/^\[[^\]]*\]\s?/, '');
    if (/^DirectShow audio devices/.test(line)) section = 'audio';
    else if (/^DirectShow video devices/.test(line)) section = 'video';
    if (/^\s*Alternative name /.test(line)) continue;
    const m = /^\s*"(.*)"(?:\s+\(([^)]*)\))?\s*$/.exec(line);
    if (!m) continue;
    const kinds = m[2]?.split(',').map((k) => k.trim());
    if (kinds ? kinds.includes('audio') : section === 'audio') out.push(m[1]);
  }
  return out;
}

/**
 * AVFoundation's audio devices from `-f avfoundation -list_devices true -i ""` (stderr):
 *   [AVFoundation indev @ 0x7f…] AVFoundation audio devices:
 *   [AVFoundation indev @ 0x7f…] [0] MacBook Pro Microphone
 */
export function parseAvfoundationAudio(text: string): Array<{ index: number; name: string }> {
  const out: Array<{ index: number; name: string }> = [];
  let audio = false;
  for (const line of text.split(/\r?\n/)) {
    if (/AVFoundation audio devices:/.test(line)) audio = true;
    else if (/AVFoundation video devices:/.test(line)) audio = false;
    else if (audio) {
      const m = /^\[[^\]]*\] \[(\d+)\] (.+)$/.exec(line);
      if (m) out.push({ index: Number(m[1]), name: m[2].trim() });
      else if (!line.startsWith('[AVFoundation')) audio = false; // the listing's end ("…: Input/output error")
    }
  }
  return out;
}

// ---- What to print ---------------------------------------------------------------------------

/** `--audio NAME` as a shell takes it: quoted when it holds anything beyond a plain word. */
export function audioFlag(name: string): string {
  return /^[A-Za-z0-9_.:,@=/+-]+$/.test(name) ? `--audio ${name}` : `--audio "${name.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** Rows of `--audio NAME` and what it is, the names padded to one column. */
function table(rows: Array<[name: string, note: string]>): string[] {
  const flags = rows.map(([name]) => audioFlag(name));
  const width = Math.max(...flags.map((f) => f.length));
  return rows.map(([, note], i) => `  ${note ? `${flags[i].padEnd(width)}  ${note}` : flags[i]}`.trimEnd());
}

const HOW_TO_NAME_LINUX = 'name one with --audio SOURCE (a PulseAudio/PipeWire source, `pactl list short sources`) or --audio alsa:hw:CARD,DEV';

export interface LinuxFindings {
  ffmpegPath: string;
  sources: DeviceListing;
  sinks: DeviceListing;
  /** ALSA capture devices as `--audio` names them (alsa:hw:…), with a description. */
  alsa: Array<{ name: string; description: string }>;
}

/** A PulseAudio source that records what an output plays (PipeWire names them the same way). */
function isMonitor(d: ListedDevice): boolean {
  return d.name.endsWith('.monitor') || d.description.startsWith('Monitor of ');
}

/** The lines `--audio list` prints on Linux (and the other systems that capture through PulseAudio). */
export function linuxReport(f: LinuxFindings): string[] {
  const lines: string[] = [];
  const pulse = f.sources.devices;
  const defaultSink = f.sinks.devices.find((d) => d.isDefault)?.name;
  if (pulse.length) {
    lines.push('PulseAudio/PipeWire sources:');
    const rows = pulse.map((d): [string, string] => {
      const notes: string[] = [];
      if (isMonitor(d)) {
        const output = d.description.replace(/^Monitor of /, '');
        if (defaultSink !== undefined && d.name === `${defaultSink}.monitor`) notes.push(`what this machine plays (the default output, ${output}): what --audio alone captures`);
        else notes.push(`what ${output} plays`);
      } else notes.push(d.description);
      if (d.isDefault) notes.push('the default source');
      return [d.name, notes.filter(Boolean).join('; ')];
    });
    lines.push(...table(rows));
  }
  if (f.alsa.length) {
    lines.push('ALSA capture devices:');
    lines.push(...table(f.alsa.map((d) => [d.name, d.description])));
  }
  if (!pulse.length && !f.alsa.length) {
    return [`no sound source to list: ${pulseProblem(f)} and no ALSA capture device was found; ${HOW_TO_NAME_LINUX}`];
  }
  if (!pulse.length) lines.push(`(no PulseAudio/PipeWire source: ${pulseProblem(f)})`);
  else if (defaultSink === undefined) lines.push("--audio alone captures @DEFAULT_MONITOR@: what the default output plays");
  return lines;
}

function pulseProblem(f: LinuxFindings): string {
  if (!f.sources.supported) return `this FFmpeg (${f.ffmpegPath}) has no PulseAudio input (a static build? the distribution's ffmpeg has it)`;
  if (f.sources.error) return `no PulseAudio or PipeWire server answered (${f.sources.error})`;
  return 'the PulseAudio/PipeWire server lists none';
}

/** Names Windows gives the capture of what it plays, or the virtual cables people install for it. */
const WINDOWS_LOOPBACK = /stereo mix|what u hear|wave out mix|loopback|virtual-audio-capturer|cable output/i;
const STEREO_MIX_HOW =
  'enable "Stereo Mix" (Sound settings → More sound settings → Recording → right-click → Show Disabled Devices → Stereo Mix → Enable) or install a virtual capture device (VB-Audio Virtual Cable, virtual-audio-capturer)';

/** The lines `--audio list` prints on Windows, from the DirectShow audio devices. */
export function windowsReport(devices: string[]): string[] {
  if (!devices.length) return [`no DirectShow audio device to list (FFmpeg found none); to share what this machine plays, ${STEREO_MIX_HOW}, then name it: --audio "Stereo Mix (…)"`];
  const lines = ['DirectShow audio devices:', ...table(devices.map((d) => [d, WINDOWS_LOOPBACK.test(d) ? 'what this machine plays' : '']))];
  if (!devices.some((d) => WINDOWS_LOOPBACK.test(d))) lines.push(`None of these is what this machine plays: ${STEREO_MIX_HOW}.`);
  return lines;
}

/** Loopback drivers on macOS: what is sent to them can be captured. */
const MAC_LOOPBACK = /blackhole|soundflower|loopback|background music|ishowu/i;
const BLACKHOLE_HOW =
  'the system\'s sound needs a loopback device such as BlackHole (brew install blackhole-2ch), chosen as the output (a Multi-Output Device in Audio MIDI Setup keeps it audible)';

/** The lines `--audio list` prints on macOS, from the AVFoundation audio devices. */
export function macReport(devices: Array<{ index: number; name: string }>): string[] {
  if (!devices.length) return [`no AVFoundation audio device to list (FFmpeg found none); ${BLACKHOLE_HOW}; then name it: --audio "BlackHole 2ch" or its index`];
  const rows = devices.map((d): [string, string] => [String(d.index), d.name + (MAC_LOOPBACK.test(d.name) ? ': a loopback device, what is sent to it (the system\'s sound when it is the output)' : '')]);
  const lines = ['AVFoundation audio devices (--audio takes the index or the name):', ...table(rows)];
  if (!devices.some((d) => MAC_LOOPBACK.test(d.name))) lines.push(`None of these is what this machine plays: ${BLACKHOLE_HOW}.`);
  return lines;
}

// ---- Asking ------------------------------------------------------------------------------------

export interface ToolRun {
  stdout: string;
  stderr: string;
  /** Why it gave no answer: it did not start (not installed) or outlived its time. */
  failed?: string;
}

/** Runs a tool to its end and hands back what it printed; injectable so tests fake the tools. */
export type RunTool = (command: string, args: readonly string[], env?: NodeJS.ProcessEnv) => Promise<ToolRun>;

/** A tool run through the owned-process wrapper, killed after PROBE_TIMEOUT_MS. */
export function runTool(spawn?: SpawnFn): RunTool {
  return (command, args, env) =>
    new Promise((resolve) => {
      const proc = new OwnedProcess({ command, args, env, spawn });
      const stdout: Buffer[] = [];
      const stderr: string[] = [];
      let failed: string | undefined;
      proc.stdout?.on('data', (c: Buffer) => stdout.push(c));
      proc.on('stderr-line', (l) => stderr.push(l));
      const timer = setTimeout(() => {
        failed = `no answer within ${PROBE_TIMEOUT_MS} ms`;
        void proc.kill();
      }, PROBE_TIMEOUT_MS);
      const done = () => {
        clearTimeout(timer);
        resolve({ stdout: Buffer.concat(stdout).toString('utf8'), stderr: stderr.join('\n'), failed });
      };
      proc.on('failed-to-start', (err) => {
        failed = err.message;
        done();
      });
      proc.on('died', done);
    });
}

/** What `share --audio list` prints, one line each, for this platform. */
export async function listAudioSources(ffmpegPath: string, platform: NodeJS.Platform = process.platform, run: RunTool = runTool()): Promise<string[]> {
  const ffmpeg = (...args: string[]) => run(ffmpegPath, ['-hide_banner', '-nostdin', ...args]);
  if (platform === 'win32') {
    const r = await ffmpeg('-list_devices', 'true', '-f', 'dshow', '-i', 'dummy');
    return windowsReport(parseDshowAudio(r.stderr));
  }
  if (platform === 'darwin') {
    const r = await ffmpeg('-f', 'avfoundation', '-list_devices', 'true', '-i', '');
    return macReport(parseAvfoundationAudio(r.stderr));
  }
  const [sources, sinks, alsa] = await Promise.all([ffmpeg('-sources', 'pulse'), ffmpeg('-sinks', 'pulse'), alsaCaptures(ffmpeg, run)]);
  return linuxReport({ ffmpegPath, sources: parseDeviceListing(sources.stdout), sinks: parseDeviceListing(sinks.stdout), alsa });
}

/** ALSA capture devices from arecord (card and device names), else from FFmpeg's ALSA hints. */
async function alsaCaptures(ffmpeg: (...args: string[]) => Promise<ToolRun>, run: RunTool): Promise<LinuxFindings['alsa']> {
  // arecord's listing is translated: the C locale keeps it parseable.
  const arecord = await run('arecord', ['-l'], { ...process.env, LC_ALL: 'C' });
  if (!arecord.failed) {
    return parseArecordList(arecord.stdout).map((d) => ({ name: `alsa:hw:${d.card},${d.device}`, description: `${d.cardName}: ${d.deviceName}` }));
  }
  const hints = parseDeviceListing((await ffmpeg('-sources', 'alsa')).stdout);
  return hints.devices.filter((d) => d.name.startsWith('hw:')).map((d) => ({ name: `alsa:${d.name}`, description: d.description }));
}

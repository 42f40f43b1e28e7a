/**
 * Where the sound comes from (`share --audio`), as FFmpeg input arguments. Off unless asked for:
 * a screen share that starts sending whatever the machine plays would surprise, so `--audio` is
 * always a choice made on the command line.
 *
 *   --audio list       no share: prints what the names below can be here (capture/audio-list.ts)
 *   --audio test       a 1 kHz beep of AUDIO_TEST_BEEP_S every second, on the test pattern's flash
 *                      (testFlashFilter), so lip sync can be measured from a recording
 *   --audio            with --source FILE: the file's own first audio track; with the screen: the
 *                      desktop's sound (Linux: the default output's monitor through PulseAudio or
 *                      PipeWire's pulse server)
 *   --audio NAME       a capture device: a PulseAudio source (`pactl list short sources`), `alsa:hw:0`
 *                      for ALSA, a DirectShow device on Windows (`ffmpeg -list_devices true -f dshow
 *                      -i dummy`; the desktop's sound needs "Stereo Mix" enabled or a virtual
 *                      capture device), an AVFoundation device index or name on macOS (system sound
 *                      needs a loopback device such as BlackHole)
 */
import { UsageError } from '../util/errors.ts';

export type AudioSource = { kind: 'test' } | { kind: 'file' } | { kind: 'device'; name: string };

/** The test beep: this long, every AUDIO_TEST_PERIOD_S, at AUDIO_TEST_HZ; the pattern flashes white as long. */
export const AUDIO_TEST_BEEP_S = 0.1;
export const AUDIO_TEST_PERIOD_S = 1;
export const AUDIO_TEST_HZ = 1000;
/** Opus's one sampling rate on the wire (RFC 7587 §4.1: the RTP clock is 48 kHz whatever is coded). */
export const AUDIO_RATE = 48000;
/** `--audio list`: print the sources this machine has (capture/audio-list.ts) instead of sharing. */
export const AUDIO_LIST = 'list';
/** Sound is read from its source this many ms at a time: the Opus packet's length at most. */
export const CAPTURE_CHUNK_MS = 10;
/** PulseAudio's name for the monitor of the default output: what the machine plays. */
const PULSE_DESKTOP = '@DEFAULT_MONITOR@';

/**
 * `--audio` as given (undefined: off; true: no value) for a share of `source`: what to capture.
 * A file without a value means its own sound; the test pattern its beep.
 */
export function parseAudio(value: string | boolean | undefined, source: string): AudioSource | undefined {
  if (value === undefined || value === false) return undefined;
  const name = value === true ? '' : String(value).trim();
  if (name === 'test') return { kind: 'test' };
  // `share --audio list` prints the sources and exits before a share is set up (apps/main.ts).
  if (name === AUDIO_LIST) throw new UsageError(`--audio ${AUDIO_LIST} prints what --audio can capture and exits; it is not a source`);
  if (name === '') {
    if (source === 'test') return { kind: 'test' };
    if (source === 'screen') return { kind: 'device', name: 'default' };
    return { kind: 'file' };
  }
  if (name === 'file') {
    if (source === 'screen' || source === 'test') throw new UsageError(`--audio file takes the sound of --source FILE; --source ${source} has none: use --audio test or a device`);
    return { kind: 'file' };
  }
  return { kind: 'device', name };
}

/** The FFmpeg input for `audio` (a second input after the picture's), or none when the picture's input carries it. */
export function audioInputArgs(audio: AudioSource, platform: NodeJS.Platform = process.platform): string[] {
  switch (audio.kind) {
    case 'file':
      return [];
    case 'test': {
      // Silence, then the beep from each period's start: the same instants as testFlashFilter's.
      const on = `lt(mod(t,${AUDIO_TEST_PERIOD_S}),${AUDIO_TEST_BEEP_S})`;
      // In CAPTURE_CHUNK_MS chunks (aevalsrc's default is 1024 samples, 21 ms): a beep's first
      // samples are not held back longer than a device's would be.
      return ['-re', '-f', 'lavfi', '-i', `aevalsrc=exprs='if(${on},0.5*sin(2*PI*${AUDIO_TEST_HZ}*t),0)':s=${AUDIO_RATE}:c=mono:n=${(AUDIO_RATE * CAPTURE_CHUNK_MS) / 1000}`];
    }
    case 'device': {
      const name = audio.name;
      if (name.startsWith('alsa:')) return ['-f', 'alsa', '-i', name.slice('alsa:'.length) || 'default'];
      if (platform === 'win32') {
        if (name === 'default') throw new UsageError('--audio on Windows needs a device name: list them with `ffmpeg -list_devices true -f dshow -i dummy` (the desktop\'s sound: enable "Stereo Mix" or install a virtual capture device)');
        return ['-f', 'dshow', '-i', `audio=${name}`];
      }
      if (platform === 'darwin') {
        if (name === 'default') throw new UsageError('--audio on macOS needs a device: list them with `ffmpeg -f avfoundation -list_devices true -i ""` (the system\'s sound needs a loopback device such as BlackHole)');
        return ['-f', 'avfoundation', '-i', `:${name}`];
      }
      // Fragments of CAPTURE_CHUNK_MS (16-bit stereo), not the server's choice of tens of ms.
      return ['-f', 'pulse', '-fragment_size', String((AUDIO_RATE * 4 * CAPTURE_CHUNK_MS) / 1000), '-i', name === 'default' ? PULSE_DESKTOP : name];
    }
  }
}

/** The test pattern's flash: white over the whole picture while the beep sounds (drawbox, by the pattern's own clock). */
export function testFlashFilter(): string {
  return `drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,${AUDIO_TEST_PERIOD_S}),${AUDIO_TEST_BEEP_S})'`;
}

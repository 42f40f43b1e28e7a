/**
 * What a viewer hears beside what it sees: a PulseAudio server of our own whose null sink ffplay
 * plays into and whose monitor is recorded as it plays (the "ear"), and the window filmed (the
 * "glass"), for the lip-sync benchmark and the player's sound test. With `share --source test
 * --audio test` a beep starts on each white flash of the pattern, both captured at the same
 * instant, so a beep's onset minus its flash's appearance is the sound's capture-to-ear latency
 * minus the picture's capture-to-glass latency, whatever either is.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Frames } from './lib.ts';

/** The rate of the null sink and of the recording of its monitor. */
export const EAR_RATE = 48000;
/** The null sink's name (its monitor is `${EAR_SINK}.monitor`). */
export const EAR_SINK = 'udpcast';

/**
 * A private PulseAudio in `dir`: its configuration (one stereo null sink `sink`, the default, and
 * a native socket loaded last, so once the socket exists the sink's monitor does too) is written
 * there, and the command line returned, with the environment to start it in (its own runtime
 * directory, home and configuration; no D-Bus) and the one that points clients (ffplay through
 * SDL, parec, FFmpeg's pulse input) at it. No shared memory: memfd blocks fail between a root
 * daemon and its clients in containers ("Cannot send block reference with non-registered memfd");
 * as root it only warns that it is not meant for root.
 */
export function pulseCommand(dir: string, sink = EAR_SINK): { args: string[]; serverEnv: NodeJS.ProcessEnv; env: NodeJS.ProcessEnv; socket: string } {
  const socket = path.join(dir, 'pulse.sock');
  const config = path.join(dir, 'default.pa');
  writeFileSync(
    config,
    [`load-module module-null-sink sink_name=${sink} rate=${EAR_RATE} channels=2`, `set-default-sink ${sink}`, `load-module module-native-protocol-unix socket=${socket} auth-anonymous=1`, ''].join('\n'),
  );
  return {
    socket,
    args: ['-n', '-F', config, '--daemonize=no', '--use-pid-file=no', '--exit-idle-time=-1', '--disable-shm=yes', '--realtime=no', '--high-priority=no', '--log-target=stderr'],
    serverEnv: { XDG_RUNTIME_DIR: dir, HOME: dir, XDG_CONFIG_HOME: path.join(dir, 'config'), PULSE_SERVER: undefined, DBUS_SESSION_BUS_ADDRESS: undefined },
    env: { PULSE_SERVER: `unix:${socket}`, SDL_AUDIODRIVER: 'pulseaudio', HOME: dir, XDG_RUNTIME_DIR: dir },
  };
}

/** parec of the sink's monitor: 16-bit mono at EAR_RATE, in 5 ms fragments. */
export const PAREC_ARGS = ['-d', `${EAR_SINK}.monitor`, '--raw', '--format=s16le', `--rate=${EAR_RATE}`, '--channels=1', '--latency-msec=5'];

/**
 * The monitor's samples, each chunk stamped on arrival: sample n was heard at `origin + n /
 * EAR_RATE` s, the origin taken from the chunk that arrived earliest for its place (a chunk can
 * only come after its last sample was played).
 */
export class Heard {
  private readonly pcm: Buffer[] = [];
  private samples = 0;
  private origin = Infinity;
  attach(stream: NodeJS.ReadableStream, now: () => number): void {
    stream.on('data', (b: Buffer) => {
      this.pcm.push(b);
      this.samples += b.length / 2;
      this.origin = Math.min(this.origin, now() - (this.samples / EAR_RATE) * 1000);
    });
  }
  /** Beep onsets heard, in the `now` clock's ms. */
  onsets(): number[] {
    return beepOnsetSamples(Buffer.concat(this.pcm)).map((n) => this.origin + (n / EAR_RATE) * 1000);
  }
}

/**
 * Beep onsets in 16-bit mono PCM at EAR_RATE, as sample indexes: the first 1 ms block loud after
 * at least 0.3 s of quiet ones (the beep is 0.1 s each second; the rest is silence).
 */
export function beepOnsetSamples(pcm: Buffer): number[] {
  const block = EAR_RATE / 1000;
  const out: number[] = [];
  let quiet = Infinity;
  for (let b = 0; (b + 1) * block * 2 <= pcm.length; b++) {
    let peak = 0;
    for (let i = 0; i < block; i++) peak = Math.max(peak, Math.abs(pcm.readInt16LE((b * block + i) * 2)));
    if (peak > 3000) {
      if (quiet >= 300) out.push(b * block);
      quiet = 0;
    } else {
      quiet++;
    }
  }
  return out;
}

/** 30 ms of white at the film's 100 fps; the pattern's moving shapes pass the middle at levels up to about 215. */
const FLASH_MIN_FRAMES = 3;
const FLASH_LEVEL = 240;

/** When the filmed window turned white for a flash (0.1 s): near pure white for FLASH_MIN_FRAMES frames. */
export function flashesSeen(frames: Frames, since: number): number[] {
  const out: number[] = [];
  let run: number[] = [];
  for (const f of frames.list) {
    if (f.at >= since && f.level >= FLASH_LEVEL) {
      run.push(f.at);
      if (run.length === FLASH_MIN_FRAMES) out.push(run[0]);
    } else {
      run = [];
    }
  }
  return out;
}

/** Each flash paired with the nearest beep heard: sound minus picture, ms (positive: the sound is late). */
export function soundMinusPicture(flashes: number[], onsets: number[]): number[] {
  if (onsets.length === 0) return [];
  return flashes.map((f) => Math.round(onsets.reduce((best, o) => (Math.abs(o - f) < Math.abs(best - f) ? o : best), Infinity) - f));
}

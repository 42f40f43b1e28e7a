/**
 * Where reassembled frames go: ffplay (low-latency flags), a file, or stdout. Each sink takes whole
 * frames only: an Annex B access unit or one JPEG at a time.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { OwnedProcess } from '../util/child.ts';

export interface FrameSink {
  write(data: Buffer): void;
  close(): Promise<void>;
}

/**
 * Input options for a player reading our elementary stream, tuned for delay: minimal probing (the
 * stream starts with SPS/PPS, nothing to guess) and low_delay decoding. Not `-fflags nobuffer`:
 * it discards the packets read while probing, which for a joining viewer are the keyframe the
 * relay sends for instant start, so the picture would wait for the next keyframe (measured: a
 * late-join capture decodes 145 frames without it, 0 with it).
 */
export function playerInputArgs(codec: 'h264' | 'mjpeg'): string[] {
  return ['-flags', 'low_delay', '-probesize', '32', '-analyzeduration', '0', '-f', codec === 'h264' ? 'h264' : 'mjpeg'];
}

/** ffplay reading from stdin: the input options above, late frames dropped, no A/V clock to wait on. */
export function ffplayArgs(codec: 'h264' | 'mjpeg', title: string): string[] {
  return ['-hide_banner', '-loglevel', 'warning', '-framedrop', '-sync', 'ext', '-window_title', title, ...playerInputArgs(codec), '-i', 'pipe:0'];
}

export class FileSink implements FrameSink {
  private readonly out: WriteStream | NodeJS.WriteStream;
  private readonly ownsStream: boolean;
  constructor(path: string) {
    this.ownsStream = path !== '-';
    this.out = path === '-' ? process.stdout : createWriteStream(path);
    this.out.on('error', () => {}); // a closed stdout (EPIPE) ends output, not the viewer
  }
  write(data: Buffer): void {
    this.out.write(data);
  }
  close(): Promise<void> {
    if (!this.ownsStream) return Promise.resolve();
    return new Promise((resolve) => (this.out as WriteStream).end(() => resolve()));
  }
}

/** ffplay as a sink; `onExit` tells watch the player ended (window closed: 0; a crash: non-zero). */
export class FfplaySink implements FrameSink {
  private readonly proc: OwnedProcess;
  private gone = false;
  constructor(ffplayPath: string, codec: 'h264' | 'mjpeg', title: string, onExit: (code: number | null, err?: Error) => void, log: (line: string) => void) {
    this.proc = new OwnedProcess({
      name: 'ffplay',
      command: ffplayPath,
      args: ffplayArgs(codec, title),
      stdin: 'pipe', // the elementary stream, one whole frame per write
      stdout: 'ignore',
    });
    this.proc.on('stderr-line', (line: string) => log(`ffplay: ${line}`));
    this.proc.on('failed-to-start', (err: Error) => {
      this.gone = true;
      onExit(null, err);
    });
    this.proc.on('died', (code: number | null, _signal, expected: boolean) => {
      this.gone = true;
      if (!expected) onExit(code);
    });
  }
  write(data: Buffer): void {
    if (!this.gone) this.proc.stdin?.write(data);
  }
  async close(): Promise<void> {
    this.gone = true;
    await this.proc.kill();
  }
}

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
 * ffplay reading the elementary stream from stdin, tuned for delay over smoothness:
 * no input buffering, low_delay decoding, drop late frames, minimal probing, no A/V clock to wait on.
 */
export function ffplayArgs(codec: 'h264' | 'mjpeg', title: string): string[] {
  return [
    '-hide_banner',
    '-loglevel', 'warning',
    '-fflags', 'nobuffer',
    '-flags', 'low_delay',
    '-framedrop',
    '-probesize', '32',
    '-analyzeduration', '0',
    '-sync', 'ext',
    '-window_title', title,
    '-f', codec === 'h264' ? 'h264' : 'mjpeg',
    '-i', 'pipe:0',
  ];
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

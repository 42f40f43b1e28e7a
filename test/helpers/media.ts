/**
 * Real encoded frames and FFmpeg's verdict on a file, for the container tests: frames come from
 * FFmpeg's own encoders (x264 ultrafast with an access unit delimiter before each access unit, so
 * they split exactly; MJPEG split at each SOI), and ffprobe says what a player would see.
 */
import { spawnSync } from 'node:child_process';
import { NAL_AUD, NAL_IDR, joinAnnexB, nalType, splitAnnexB } from '../../src/codecs/h264/annexb.ts';
import { OggOpusReader } from '../../src/encode/ogg.ts';

export interface EncodedFrame {
  data: Buffer;
  keyframe: boolean;
}

const TESTSRC = ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30'];

/** `count` frames of FFmpeg's test pattern, 320x240, keyframe every 30 (H.264) or always (MJPEG). */
export function encodeFrames(codec: 'h264' | 'mjpeg', count: number): EncodedFrame[] {
  const encode =
    codec === 'h264'
      ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-bf', '0', '-x264-params', 'aud=1', '-f', 'h264']
      : ['-c:v', 'mjpeg', '-q:v', '5', '-pix_fmt', 'yuvj420p', '-f', 'mjpeg'];
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', ...TESTSRC, '-frames:v', String(count), ...encode, '-'], {
    maxBuffer: 256 * 1024 * 1024,
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`ffmpeg: ${r.stderr.toString()}`);
  return codec === 'h264' ? accessUnits(r.stdout) : jpegs(r.stdout);
}

function accessUnits(stream: Buffer): EncodedFrame[] {
  const out: EncodedFrame[] = [];
  let nalus: Buffer[] = [];
  const flush = () => {
    if (nalus.length) out.push({ data: joinAnnexB(nalus), keyframe: nalus.some((n) => nalType(n) === NAL_IDR) });
    nalus = [];
  };
  for (const n of splitAnnexB(stream)) {
    if (nalType(n) === NAL_AUD) flush();
    nalus.push(n);
  }
  flush();
  return out;
}

function jpegs(stream: Buffer): EncodedFrame[] {
  const out: EncodedFrame[] = [];
  const boundary = Buffer.from([0xff, 0xd9, 0xff, 0xd8]); // EOI then the next SOI
  let start = 0;
  for (;;) {
    const at = stream.indexOf(boundary, start);
    const end = at < 0 ? stream.length : at + 2;
    out.push({ data: stream.subarray(start, end), keyframe: true });
    if (at < 0) return out;
    start = end;
  }
}

export interface Probe {
  /** FFmpeg's decode errors (-v error), empty when clean. */
  errors: string;
  codec?: string;
  width?: number;
  height?: number;
  /** Frames decoded. */
  frames: number;
  /** The container's duration in seconds, as ffprobe reports it. */
  duration?: number;
  /** Frames per second over the stream (avg_frame_rate), from its timestamps. */
  fps?: number;
}

/** ffprobe's view of a file: codec, size, duration, and every frame decoded (-count_frames). */
export function probe(file: string, timeoutMs = 60_000): Probe {
  const r = spawnSync(
    'ffprobe',
    ['-v', 'error', '-count_frames', '-show_entries', 'format=duration:stream=codec_name,width,height,nb_read_frames,avg_frame_rate', '-of', 'json', file],
    { encoding: 'utf8', timeout: timeoutMs },
  );
  const j = JSON.parse(r.stdout || '{}') as { streams?: Record<string, string | number>[]; format?: { duration?: string } };
  const s = j.streams?.[0] ?? {};
  return {
    errors: r.stderr.trim(),
    codec: s.codec_name as string | undefined,
    width: s.width as number | undefined,
    height: s.height as number | undefined,
    frames: Number(s.nb_read_frames ?? 0),
    duration: j.format?.duration !== undefined ? Number(j.format.duration) : undefined,
    fps: rate(s.avg_frame_rate as string | undefined),
  };
}

/** ffprobe's "30000/1001" as a number; undefined for "0/0". */
function rate(r: string | undefined): number | undefined {
  const [n, d] = (r ?? '').split('/').map(Number);
  return n > 0 && d > 0 ? n / d : undefined;
}

/** Mean luma of each frame of `file`'s picture, by its time (FFmpeg's signalstats). */
export function frameLuma(file: string): Array<{ t: number; y: number }> {
  const r = spawnSync('ffprobe', ['-v', 'error', '-f', 'lavfi', '-i', `movie=${file},signalstats`, '-show_entries', 'frame=pts_time:frame_tags=lavfi.signalstats.YAVG', '-of', 'csv=p=0'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const [t, y] = l.split(',').map(Number);
    return { t, y };
  });
}

/** When the sound of `file` starts after each silence (FFmpeg's silencedetect), in seconds. */
export function soundOnsets(file: string): number[] {
  const r = spawnSync('ffmpeg', ['-nostdin', '-i', file, '-map', '0:a:0', '-af', 'silencedetect=n=-30dB:d=0.05', '-f', 'null', '-'], { encoding: 'utf8' });
  return [...r.stderr.matchAll(/silence_end: ([\d.]+)/g)].map((m) => Number(m[1]));
}

/**
 * `share --audio test`'s check: the pattern's white flashes (luma rising past 200) in `videoFile`
 * and the beep's onsets in `audioFile` (the same file for a recording with both), and how far the
 * worst flash is from its nearest beep, in ms.
 */
export function beepsOnFlashes(videoFile: string, audioFile = videoFile): { flashes: number[]; onsets: number[]; worstMs: number } {
  const luma = frameLuma(videoFile);
  const flashes: number[] = [];
  for (let i = 1; i < luma.length; i++) if (luma[i].y > 200 && luma[i - 1].y <= 200) flashes.push(luma[i].t);
  const onsets = soundOnsets(audioFile);
  let worstMs = 0;
  for (const t of flashes) {
    const near = onsets.reduce((best, o) => (Math.abs(o - t) < Math.abs(best - t) ? o : best), Infinity);
    worstMs = Math.max(worstMs, Math.round(Math.abs(near - t) * 1000));
  }
  return { flashes, onsets, worstMs };
}

/** A picture to sync sound with: black, white for 100 ms from each second's half (0.5 s, 1.5 s, …). */
const FLASHES = ['-f', 'lavfi', '-i', "color=c=black:size=320x240:rate=30,geq=lum='if(lt(mod(T-0.5\\,1)\\,0.1)\\,235\\,16)':cb=128:cr=128"];

/** `count` frames of FLASHES at 30 fps through x264 as `encodeFrames` does (keyframe every 30). */
export function encodeFlashes(count: number): EncodedFrame[] {
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', ...FLASHES, '-frames:v', String(count),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-bf', '0', '-x264-params', 'aud=1', '-f', 'h264', '-'], {
    maxBuffer: 256 * 1024 * 1024,
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`ffmpeg: ${r.stderr.toString()}`);
  return accessUnits(r.stdout);
}

/**
 * The sound for FLASHES: a 1 kHz beep for 100 ms from each second's half, as seen on a timeline
 * that starts `from` seconds into the picture's, `seconds` long, as libopus's 20 ms packets with
 * the OpusHead its Ogg stream carries (mono, pre-skip 312). Packet k's first decoded sample, pre-skip
 * included, is at `from` + k × 20 ms: the encoder's input at that time minus the pre-skip.
 */
export function encodeBeeps(seconds: number, from: number): { head: Buffer; packets: Buffer[] } {
  const beep = `aevalsrc='if(lt(mod(t+${from}-0.5\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)':s=48000:d=${seconds}`;
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-f', 'lavfi', '-i', beep, '-c:a', 'libopus', '-frame_duration', '20', '-page_duration', '20000', '-f', 'opus', '-'], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`ffmpeg: ${r.stderr.toString()}`);
  const reader = new OggOpusReader();
  const packets = reader.push(r.stdout).map((p) => p.data);
  return { head: reader.head!, packets };
}

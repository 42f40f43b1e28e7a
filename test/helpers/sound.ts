/**
 * The sound of a recording as ffprobe reads it, packet by packet: where the sharer's sound is
 * missing. A missing stretch is either a concealment mark the viewer wrote (an Opus packet of its
 * TOC byte alone, which the decoder fills with a guess) or a hole in the packets' times; a run of
 * them in a row is one gap, heard as one glitch.
 */
import { spawnSync } from 'node:child_process';

export interface SoundGaps {
  /** Opus packets in the recording, marks included. */
  packets: number;
  /** Concealment marks (1-byte packets). */
  marks: number;
  /** Runs of missing sound (marks in a row, or a hole between packets' times). */
  gaps: number;
  /** The sound's length in seconds, first packet to last. */
  seconds: number;
}

/** Reads the first audio track's packets of `file` with ffprobe. */
export function soundGaps(file: string): SoundGaps {
  const r = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'a:0', '-show_entries', 'packet=pts_time,duration_time,size', '-of', 'csv=p=0', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const rows = r.stdout.split('\n').filter(Boolean).map((l) => {
    const [pts, duration, size] = l.split(',').map(Number);
    return { pts, duration, size };
  });
  let marks = 0;
  let gaps = 0;
  let inGap = false;
  for (let i = 0; i < rows.length; i++) {
    const p = rows[i];
    // A hole: this packet starts more than half a packet after the previous one ended.
    const hole = i > 0 && p.pts - (rows[i - 1].pts + rows[i - 1].duration) > rows[i - 1].duration / 2;
    if (hole && !inGap) gaps++;
    if (p.size <= 1) {
      marks++;
      if (!inGap && !hole) gaps++;
      inGap = true;
    } else inGap = false;
  }
  const seconds = rows.length ? rows.at(-1)!.pts + rows.at(-1)!.duration - rows[0].pts : 0;
  return { packets: rows.length, marks, gaps, seconds };
}

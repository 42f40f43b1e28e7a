/** Rate control every bitrate-driven FFmpeg encoder shares. */

/**
 * Rate-control buffer in seconds of bitrate. A VBV of half a second keeps the encoder's worst-case
 * burst (and so the network queue it causes) short while leaving room for keyframes.
 */
export const VBV_SECONDS = 0.5;

/** A capped bitrate with a short buffer. */
export function rateArgs(kbps: number): string[] {
  const buf = Math.max(1, Math.round(kbps * VBV_SECONDS));
  return ['-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${buf}k`];
}

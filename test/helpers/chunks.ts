/** Helpers for the readers of FFmpeg's pipes (FLV, JPEG, Ogg), which must take their input split anywhere. */

/** Feeds `data` to a reader cut at `cuts` (ascending offsets) and returns everything it gave, in order. */
export function pushAll<T>(r: { push(b: Buffer): T[] }, data: Buffer, cuts: number[]): T[] {
  const out: T[] = [];
  let prev = 0;
  for (const c of [...cuts, data.length]) {
    out.push(...r.push(data.subarray(prev, c)));
    prev = c;
  }
  return out;
}

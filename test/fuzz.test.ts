// Every parser under a mutation fuzzer seeded with real packets (x264 and MJPEG encodes through our
// packetizers, RTCP of every kind we send, FEC parity, FFmpeg's FLV stream) and under random bytes:
// only each module's declared errors may escape. The same harness runs for minutes in `npm run bench`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { skipUnless } from './helpers/tools.ts';

/** Per parser and input kind; the bench runs 8 s each. */
const MS = 400;

test('mutation and random fuzzing of every parser raises only declared errors', { skip: skipUnless('ffmpeg') }, async () => {
  const { targets, runFuzz } = await import('../bench/fuzz.ts');
  const all = targets();
  assert.ok(all.length >= 10, 'every parser is a target');
  const failures: string[] = [];
  let execs = 0;
  for (const t of all) {
    assert.ok(t.seeds.length > 0, `${t.name} has seeds`);
    // The seeds themselves are valid input: none may be called a crash.
    for (const seed of t.seeds.slice(0, 20)) {
      try {
        t.feed(seed);
      } catch (err) {
        if (!t.allowed(err)) failures.push(`${t.name} on a valid seed: ${(err as Error).message}`);
      }
    }
    for (const mode of ['mutation', 'random'] as const) {
      const r = runFuzz(t, mode, MS, (input, _i, err) => `${t.name} (${mode}): ${(err as Error)?.name}: ${(err as Error)?.message} on ${input.toString('hex').slice(0, 80)}`);
      execs += r.execs;
      failures.push(...r.found);
    }
  }
  console.log(`# fuzz: ${execs} executions over ${all.length} parsers`);
  assert.deepEqual(failures, []);
});

// Builds udpcast's optional native helper (mmsg.c → build/mmsg.node) with the system C compiler
// against the running Node's own headers: no node-gyp, no download. N-API is ABI-stable, so one
// build serves every later Node. It never fails the install: without Linux, a compiler or the
// headers (or anything else going wrong) it prints why in one line, and the relay uses node:dgram,
// one system call per datagram, instead.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A compiler that hangs must not hang `npm install`. */
const COMPILE_TIMEOUT_MS = 120_000;

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'mmsg.node');
const tmp = `${out}.${process.pid}.tmp`;

function skip(why) {
  console.log(`udpcast: native mmsg helper not built (${why}); the relay will use node:dgram`);
  process.exit(0);
}

function build() {
  if (process.platform !== 'linux') skip(`sendmmsg(2) and recvmmsg(2) are Linux only, this is ${process.platform}`);
  if (process.env.UDPCAST_SKIP_NATIVE) skip('UDPCAST_SKIP_NATIVE is set');

  const includeDirs = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'),
    process.config.variables.node_prefix && join(process.config.variables.node_prefix, 'include', 'node'),
  ].filter(Boolean);
  const include = includeDirs.find((d) => existsSync(join(d, 'node_api.h')));
  if (!include) skip(`no node_api.h in ${includeDirs.join(' or ')}`);

  // $CC may carry words of its own ("ccache gcc").
  const compilers = [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean).map((c) => c.trim().split(/\s+/));
  mkdirSync(dirname(out), { recursive: true });
  let lastError = 'no C compiler (cc, gcc or clang) found';
  for (const [cc, ...pre] of compilers) {
    try {
      execFileSync(cc, [...pre, '-O2', '-std=c11', '-shared', '-fPIC', `-I${include}`, '-o', tmp, join(here, 'mmsg.c')], {
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: COMPILE_TIMEOUT_MS,
      });
      renameSync(tmp, out);
      console.log(`udpcast: built the native mmsg helper with ${cc} (${out})`);
      return;
    } catch (err) {
      rmSync(tmp, { force: true });
      if (err.code !== 'ENOENT') lastError = `${cc} failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`;
    }
  }
  skip(lastError);
}

try {
  build();
} catch (err) {
  skip(String(err?.message ?? err).split('\n')[0]);
}

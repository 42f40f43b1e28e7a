// Builds udpcast's optional native helper (mmsg.c → build/mmsg.node) with the system C
// compiler against the running Node's own headers: no node-gyp, no download. N-API is ABI-stable,
// so one build serves every later Node. It never fails the install: without Linux, a compiler or
// the headers it prints why in one line and the relay uses node:dgram, one system call per datagram, instead.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'mmsg.node');
const skip = (why) => {
  console.log(`udpcast: native mmsg helper not built (${why}); the relay will use node:dgram`);
  process.exit(0);
};

if (process.platform !== 'linux') skip(`sendmmsg(2) and recvmmsg(2) are Linux only, this is ${process.platform}`);
if (process.env.UDPCAST_SKIP_NATIVE) skip('UDPCAST_SKIP_NATIVE is set');

const includeDirs = [
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
  join(dirname(process.execPath), '..', 'include', 'node'),
  process.config.variables.node_prefix && join(process.config.variables.node_prefix, 'include', 'node'),
].filter(Boolean);
const include = includeDirs.find((d) => existsSync(join(d, 'node_api.h')));
if (!include) skip(`no node_api.h in ${includeDirs.join(' or ')}`);

const compilers = [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean);
const tmp = `${out}.${process.pid}.tmp`;
mkdirSync(dirname(out), { recursive: true });
let lastError = 'no C compiler (cc, gcc or clang) found';
for (const cc of compilers) {
  try {
    execFileSync(cc, ['-O2', '-std=c11', '-shared', '-fPIC', `-I${include}`, '-o', tmp, join(here, 'mmsg.c')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    renameSync(tmp, out);
    console.log(`udpcast: built the native mmsg helper with ${cc} (${out})`);
    process.exit(0);
  } catch (err) {
    rmSync(tmp, { force: true });
    lastError = err.code === 'ENOENT' ? lastError : `${cc} failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`;
  }
}
skip(lastError);

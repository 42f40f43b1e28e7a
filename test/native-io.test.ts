// The relay's native helper (native/mmsg.c), judged by real sockets on 127.0.0.1: sendToMany and
// FanoutSender's hand-over to dgram (driven by a fake helper that pushes back), and the batch receiver.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type dgram from 'node:dgram';
import { closeSync, openSync } from 'node:fs';
import { constants } from 'node:os';
import { FanoutSender, type NativeSend } from '../src/relay/io/fanout-send.ts';
import { loadNative, socketFd } from '../src/relay/io/native.ts';
import { receiveDatagrams } from '../src/relay/io/batch-receive.ts';
import type { Endpoint } from '../src/util/net.ts';
import { bindUdp } from './helpers/net.ts';
import { waitFor } from './helpers/cli.ts';

const loaded = loadNative();
const native = loaded.native;
const skipNative = native ? false : `the native helper is not available: ${loaded.why} (CI builds it: npm ci runs native/build.mjs)`;
if (skipNative) console.log(`# skipped: ${skipNative}`);

const sockets: dgram.Socket[] = [];
after(() => {
  for (const s of sockets) s.close();
});

/** `n` receivers on 127.0.0.1, each collecting what it is sent and from which port. */
async function receivers(n: number): Promise<{ socket: dgram.Socket; endpoint: Endpoint; got: { data: Buffer; fromPort: number }[] }[]> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const socket = await bindUdp(0);
    sockets.push(socket);
    const got: { data: Buffer; fromPort: number }[] = [];
    socket.on('message', (data, rinfo) => got.push({ data, fromPort: rinfo.port }));
    out.push({ socket, endpoint: { address: '127.0.0.1', port: socket.address().port }, got });
  }
  return out;
}

async function sender(): Promise<dgram.Socket> {
  const s = await bindUdp(0);
  sockets.push(s);
  return s;
}

describe('native helper: sendEach (a browser\'s packets, each its own bytes, to one address)', { skip: skipNative }, () => {
  test('datagrams arrive in order, whole or gathered from pieces, more than one batch (64) of them; from `start` on', async () => {
    const [r] = await receivers(1);
    const tx = await sender();
    const addr = native!.packAddress('127.0.0.1', r.endpoint.port);
    const datagrams = Array.from({ length: 150 }, (_, i) => (i % 2 ? [Buffer.from(`part ${i}/`), Buffer.from('rest')] : Buffer.from(`whole ${i}`)));
    assert.equal(native!.sendEach!(socketFd(tx)!, datagrams, addr, 10), 140);
    await waitFor(() => r.got.length === 140, 3000, '140 datagrams');
    assert.deepEqual(r.got.map((g) => g.data.toString()), datagrams.slice(10).map((d, i) => (Array.isArray(d) ? `part ${i + 10}/rest` : `whole ${i + 10}`)));
    assert.ok(r.got.every((g) => g.fromPort === tx.address().port));
  });

  test('bad arguments are TypeErrors; a refused destination is -errno', async () => {
    const tx = await sender();
    const fd = socketFd(tx)!;
    const addr = native!.packAddress('127.0.0.1', 9);
    assert.throws(() => native!.sendEach!(fd, 'a' as unknown as Buffer[], addr, 0), TypeError);
    assert.throws(() => native!.sendEach!(fd, [[]], addr, 0), /1-8 pieces/);
    assert.throws(() => native!.sendEach!(fd, [Buffer.from('a')], Buffer.alloc(3), 0), /packAddress/);
    assert.throws(() => native!.sendEach!(fd, [Buffer.from('a')], addr, 2), TypeError);
    assert.equal(native!.sendEach!(fd, [Buffer.from('a')], native!.packAddress('0.0.0.0', 0), 0), -constants.errno.EINVAL);
  });
});

describe('native helper: sendToMany', { skip: skipNative }, () => {
  test('packAddress: sockaddr_in and sockaddr_in6 with the port in network order; anything else is a TypeError', () => {
    const v4 = native!.packAddress('127.0.0.1', 5004);
    assert.equal(v4.length, 16); // sizeof(struct sockaddr_in)
    assert.equal(v4.readUInt16LE(0), 2); // AF_INET; sa_family_t is host order, little-endian on x86 and arm64
    assert.equal(v4.readUInt16BE(2), 5004);
    assert.deepEqual([...v4.subarray(4, 8)], [127, 0, 0, 1]);
    const v6 = native!.packAddress('::1', 65535);
    assert.equal(v6.length, 28); // sizeof(struct sockaddr_in6)
    assert.equal(v6.readUInt16LE(0), 10); // AF_INET6 on Linux
    assert.equal(v6.readUInt16BE(2), 65535);
    assert.equal(v6[23], 1);
    assert.throws(() => native!.packAddress('relay.example.org', 5004), TypeError);
    assert.throws(() => native!.packAddress('fe80::1%eth0', 5004), TypeError);
    assert.throws(() => native!.packAddress('127.0.0.1', 70000), TypeError);
    assert.throws(() => (native!.packAddress as (...a: unknown[]) => Buffer)('127.0.0.1'), TypeError);
  });

  test('one call puts the same bytes on 300 sockets, from the sending socket’s own port', async () => {
    const tx = await sender();
    const fd = socketFd(tx);
    assert.ok(fd !== undefined, 'a bound dgram socket has a descriptor');
    const rx = await receivers(300);
    const data = Buffer.from(Array.from({ length: 1200 }, (_, i) => i % 251));
    const addresses = rx.map((r) => native!.packAddress(r.endpoint.address, r.endpoint.port));
    assert.equal(native!.sendToMany(fd!, data, addresses, 0), 300);
    // Header and payload as two pieces make one datagram, as the packetizer's Buffer[] does.
    assert.equal(native!.sendToMany(fd!, [data.subarray(0, 12), data.subarray(12)], addresses, 100), 200);
    await waitFor(() => rx.every((r, i) => r.got.length === (i < 100 ? 1 : 2)), 3000, 'every datagram');
    for (const r of rx) {
      for (const g of r.got) {
        assert.ok(g.data.equals(data));
        assert.equal(g.fromPort, tx.address().port);
      }
    }
  });

  test('more destinations than one batch (1024) all get it', async () => {
    const tx = await sender();
    const rx = await receivers(100); // 11 times each: 1100 destinations without 1100 descriptors
    const addresses = Array.from({ length: 1100 }, (_, i) => native!.packAddress('127.0.0.1', rx[i % 100].endpoint.port));
    assert.equal(native!.sendToMany(socketFd(tx)!, Buffer.from('x'), addresses, 0), 1100);
    await waitFor(() => rx.every((r) => r.got.length === 11), 5000, 'every datagram');
  });

  test('a destination the kernel refuses stops the call there; the next call reports its errno', async () => {
    const tx = await sender();
    const rx = await receivers(4);
    const addresses = rx.map((r) => native!.packAddress(r.endpoint.address, r.endpoint.port));
    addresses.splice(2, 0, native!.packAddress('127.0.0.1', 0)); // UDP to port 0: EINVAL on Linux
    const fd = socketFd(tx)!;
    assert.equal(native!.sendToMany(fd, Buffer.from('a'), addresses, 0), 2);
    assert.equal(native!.sendToMany(fd, Buffer.from('a'), addresses, 2), -constants.errno.EINVAL);
    assert.equal(native!.sendToMany(fd, Buffer.from('a'), addresses, 3), 2);
    await waitFor(() => rx.every((r) => r.got.length === 1), 3000, 'the four good destinations');
  });

  test('bad arguments are TypeErrors, and the helper still sends afterwards', async () => {
    const tx = await sender();
    const [r] = await receivers(1);
    const fd = socketFd(tx)!;
    const addr = [native!.packAddress('127.0.0.1', r.endpoint.port)];
    const file = openSync(new URL(import.meta.url), 'r');
    try {
      assert.throws(() => native!.sendToMany(file, Buffer.from('a'), addr, 0), /not a datagram socket/);
    } finally {
      closeSync(file);
    }
    assert.throws(() => native!.sendToMany(-1, Buffer.from('a'), addr, 0), TypeError);
    assert.throws(() => native!.sendToMany(fd, 'a' as unknown as Buffer, addr, 0), TypeError);
    assert.throws(() => native!.sendToMany(fd, [], addr, 0), TypeError);
    assert.throws(() => native!.sendToMany(fd, Buffer.from('a'), [Buffer.alloc(3)], 0), /packAddress/);
    assert.throws(() => native!.sendToMany(fd, Buffer.from('a'), addr, 2), TypeError);
    assert.equal(native!.sendToMany(fd, Buffer.from('still works'), addr, 0), 1);
    await waitFor(() => r.got.length === 1, 3000, 'the datagram');
    assert.equal(r.got[0].data.toString(), 'still works');
  });

  test('FanoutSender on the real helper: every viewer gets it, a refused one is counted, the rest still get theirs', async () => {
    const tx = await sender();
    const rx = await receivers(20);
    const failed: Endpoint[] = [];
    const s = new FanoutSender(tx, (to) => failed.push(to), loaded);
    assert.equal(s.path, 'native');
    const bad = { address: '127.0.0.1', port: 0 };
    const to = [...rx.slice(0, 10).map((r) => r.endpoint), bad, ...rx.slice(10).map((r) => r.endpoint)];
    s.send(Buffer.from('frame'), to);
    s.send(Buffer.from('frame'), to); // the same list again: the cached addresses
    await waitFor(() => rx.every((r) => r.got.length === 2), 3000, 'two datagrams each');
    assert.deepEqual(failed, [bad, bad]);
    assert.equal(s.handedToDgram, 0);
  });
});

describe('native helper: receiving in batches', { skip: skipNative }, () => {
  type Got = { data: Buffer; from: Endpoint };
  async function batchSocket(maxBytes = 1500) {
    const socket = await sender();
    const got: Got[] = [];
    const errors: number[] = [];
    let viaDgram = 0;
    socket.on('message', () => viaDgram++);
    const r = receiveDatagrams(socket, native!, maxBytes, (data, from) => got.push({ data, from }), (e) => errors.push(e));
    assert.ok(r.batched, 'the helper takes over reading');
    return { socket, r, got, errors, viaDgram: () => viaDgram, port: socket.address().port };
  }

  test('every datagram arrives once, whole, with its sender, in order per sender; none through dgram', async () => {
    const rx = await batchSocket();
    try {
      const senders = [await sender(), await sender(), await sender()];
      const sent = new Map<number, Buffer[]>();
      for (let i = 0; i < 600; i++) {
        const s = senders[i % 3];
        const d = Buffer.alloc(2 + ((i * 37) % 1499), i & 0xff);
        d.writeUInt16BE(i, 0);
        const list = sent.get(s.address().port) ?? [];
        list.push(d);
        sent.set(s.address().port, list);
        s.send(d, rx.port, '127.0.0.1');
        if (i % 50 === 49) await new Promise((r) => setImmediate(r)); // some batches, not one
      }
      await waitFor(() => rx.got.length === 600, 5000, 'all 600 datagrams');
      for (const [port, list] of sent) {
        const mine = rx.got.filter((g) => g.from.port === port);
        assert.equal(mine.length, list.length);
        mine.forEach((g, k) => {
          assert.equal(g.from.address, '127.0.0.1');
          assert.ok(g.data.equals(list[k]), `datagram ${k} from ${port}`);
        });
      }
      assert.equal(rx.viaDgram(), 0, "node's own reading is stopped");
      assert.deepEqual(rx.errors, []);
    } finally {
      rx.r.stop();
    }
  });

  test('a datagram longer than the limit arrives one byte over it, so the size check still refuses it', async () => {
    const rx = await batchSocket(1500);
    try {
      const tx = await sender();
      tx.send(Buffer.alloc(4000, 7), rx.port, '127.0.0.1');
      tx.send(Buffer.alloc(1500, 8), rx.port, '127.0.0.1');
      await waitFor(() => rx.got.length === 2, 3000, 'both');
      assert.deepEqual(rx.got.map((g) => g.data.length), [1501, 1500]);
    } finally {
      rx.r.stop();
    }
  });

  test("a batch from one sender is views of one buffer; a mixed batch is copied, so a kept packet pins only its own bytes", async () => {
    const rx = await batchSocket();
    try {
      const [a, b] = [await sender(), await sender()];
      for (let i = 0; i < 20; i++) a.send(Buffer.alloc(100, 1), rx.port, '127.0.0.1'); // one tick: one batch
      await waitFor(() => rx.got.length === 20, 3000, 'the first batch');
      assert.equal(new Set(rx.got.map((g) => g.data.buffer)).size, 1, 'one sender: views of one batch');
      assert.equal(rx.got[0].data.buffer.byteLength, 2000);
      rx.got.length = 0;
      for (let i = 0; i < 20; i++) (i % 2 ? a : b).send(Buffer.alloc(100, 2), rx.port, '127.0.0.1');
      await waitFor(() => rx.got.length === 20, 3000, 'the mixed batch');
      assert.ok(rx.got.every((g) => g.data.buffer.byteLength !== 2000), 'mixed: no datagram holds the whole batch');
    } finally {
      rx.r.stop();
    }
  });

  test('the socket still sends while the helper reads it; after stop nothing more arrives and it closes', async () => {
    const rx = await batchSocket();
    const [peer] = await receivers(1);
    rx.socket.send(Buffer.from('out'), peer.endpoint.port, '127.0.0.1');
    peer.socket.send(Buffer.from('in'), rx.port, '127.0.0.1');
    await waitFor(() => peer.got.length === 1 && rx.got.length === 1, 3000, 'one each way');
    assert.equal(peer.got[0].fromPort, rx.port);
    rx.r.stop();
    rx.r.stop(); // idempotent
    peer.socket.send(Buffer.from('late'), rx.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(rx.got.length, 1, 'nothing after stop');
    assert.throws(() => native!.stopReceiving({}), TypeError);
    assert.throws(() => native!.startReceiving(0, 1500, () => {}, () => {}), /not a datagram socket/);
  });
});

describe('receiving without the helper', () => {
  test("node's 'message' events feed the same callback, with the sender", async () => {
    const socket = await sender();
    const got: { data: Buffer; from: Endpoint }[] = [];
    const r = receiveDatagrams(socket, undefined, 1500, (data, from) => got.push({ data, from }), () => assert.fail('no error'));
    assert.equal(r.batched, false);
    const tx = await sender();
    tx.send(Buffer.from('plain'), socket.address().port, '127.0.0.1');
    await waitFor(() => got.length === 1, 3000, 'the datagram');
    assert.equal(got[0].data.toString(), 'plain');
    assert.deepEqual(got[0].from, { address: '127.0.0.1', port: tx.address().port });
    r.stop();
  });
});

/** A stand-in helper: records calls, sends nothing, and answers as `answer` says for each start. */
function fakeNative(answer: (start: number, count: number) => number): NativeSend & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    packAddress(ip, port) {
      if (ip.includes('%')) throw new TypeError('not an IPv4 or IPv6 address');
      return Buffer.from(`${ip}:${port}`);
    },
    sendToMany(_fd, _data, addresses, start) {
      calls.push(start);
      return answer(start, addresses.length);
    },
  };
}

describe('FanoutSender hands dgram what the helper cannot send', () => {
  test('EAGAIN part-way: the helper’s share is its, the rest go by dgram, nothing is lost or sent twice', async () => {
    const tx = await sender();
    const rx = await receivers(10);
    // The "kernel" took 4, then pushed back: a real helper would have sent those 4 itself.
    const fake = fakeNative((start, count) => (start === 0 ? 4 : start === 4 ? -constants.errno.EAGAIN : count - start));
    const s = new FanoutSender(tx, () => assert.fail('no send failed'), { native: fake });
    assert.equal(s.path, 'native');
    s.send(Buffer.from('late'), rx.map((r) => r.endpoint));
    assert.deepEqual(fake.calls, [0, 4]);
    assert.equal(s.handedToDgram, 6);
    await waitFor(() => rx.slice(4).every((r) => r.got.length === 1), 3000, 'the six by dgram');
    assert.ok(rx.slice(0, 4).every((r) => r.got.length === 0), 'the four the helper took are not sent again');
  });

  test('ENOBUFS is a push-back too', async () => {
    const tx = await sender();
    const rx = await receivers(3);
    const s = new FanoutSender(tx, () => assert.fail('no send failed'), { native: fakeNative(() => -constants.errno.ENOBUFS) });
    s.send(Buffer.from('x'), rx.map((r) => r.endpoint));
    assert.equal(s.handedToDgram, 3);
    await waitFor(() => rx.every((r) => r.got.length === 1), 3000, 'all three by dgram');
  });

  test('any other errno is that viewer’s failure; the loop goes on', async () => {
    const tx = await sender();
    const failed: Endpoint[] = [];
    const fake = fakeNative((start, count) => (start === 1 ? -constants.errno.EPERM : start === 0 ? 1 : count - start));
    const s = new FanoutSender(tx, (to) => failed.push(to), { native: fake });
    const to = [0, 1, 2, 3].map((i) => ({ address: '127.0.0.1', port: 40000 + i }));
    s.send(Buffer.from('x'), to);
    assert.deepEqual(fake.calls, [0, 1, 2]);
    assert.deepEqual(failed, [to[1]]);
    assert.equal(s.handedToDgram, 0);
  });

  test('a list with an address the helper cannot pack goes by dgram, all of it', async () => {
    const tx = await sender();
    const rx = await receivers(3);
    const failed: Endpoint[] = [];
    const fake = fakeNative(() => assert.fail('the helper is not called'));
    const s = new FanoutSender(tx, (to) => failed.push(to), { native: fake });
    const zoned = { address: 'fe80::1%lo', port: 5004 }; // no IPv6 on this udp4 socket: dgram says so
    s.send(Buffer.from('x'), [...rx.map((r) => r.endpoint), zoned]);
    await waitFor(() => rx.every((r) => r.got.length === 1) && failed.length === 1, 3000, 'the three, and the one failure');
    assert.deepEqual(failed, [zoned]);
  });

  test('without the helper it is dgram, and says why', async () => {
    const tx = await sender();
    const rx = await receivers(2);
    const s = new FanoutSender(tx, () => assert.fail('no send failed'), { why: '--no-native' });
    assert.equal(s.path, 'dgram');
    assert.equal(s.why, '--no-native');
    s.send(Buffer.from('x'), rx.map((r) => r.endpoint));
    await waitFor(() => rx.every((r) => r.got.length === 1), 3000, 'both');
  });
});

describe('FanoutSender property: each viewer gets each datagram once and in order, or is counted as failed', () => {
  test('under any mix of partial sends, push-back and refusals (fast-check)', () => {
    const answer = fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 1, max: 40 }).map((n) => ({ kind: 'sent' as const, n })) },
      { weight: 1, arbitrary: fc.constantFrom('EAGAIN', 'ENOBUFS', 'EPERM', 'EINVAL', 'EHOSTUNREACH').map((e) => ({ kind: 'errno' as const, e })) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), fc.array(answer, { maxLength: 30 }), (n, script) => {
        const to = Array.from({ length: n }, (_, i) => ({ address: '127.0.0.1', port: 1000 + i }));
        // What reached each viewer, in order: the helper delivers at once, dgram when its callback runs.
        const delivered = to.map(() => [] as string[]);
        const failed: string[] = [];
        const pending: (() => void)[] = [];
        let turn = 0;
        const fake: NativeSend = {
          packAddress: (ip, port) => Buffer.from(`${ip}:${port}`),
          sendToMany(_fd, data, addresses, start) {
            const a = script[turn++] ?? { kind: 'sent' as const, n: addresses.length };
            if (a.kind === 'errno') return -constants.errno[a.e as keyof typeof constants.errno];
            const k = Math.min(a.n, addresses.length - start);
            for (let i = start; i < start + k; i++) delivered[i].push((data as Buffer).toString());
            return k;
          },
        };
        // A stand-in dgram socket: like the real one, it sends later (after a lookup, from a queue).
        const socket = {
          send: (d: Buffer, port: number, _address: string, cb: (err: Error | null) => void) =>
            void pending.push(() => {
              delivered[port - 1000].push(d.toString());
              cb(null);
            }),
        } as unknown as dgram.Socket;
        const s = new FanoutSender(socket, (e) => failed.push(`${e.port - 1000}`), { native: fake, fd: 3 });
        s.send(Buffer.from('A'), to);
        s.send(Buffer.from('B'), to); // same tick: nothing dgram was handed has left yet
        const queued = pending.length;
        for (const p of pending.splice(0)) p();
        assert.equal(s.handedToDgram, queued, 'every datagram dgram queued is counted');
        s.send(Buffer.from('C'), to); // dgram has drained: the helper again
        for (const p of pending.splice(0)) p();
        to.forEach((_, i) => {
          const got = delivered[i].join('');
          const lost = failed.filter((f) => f === `${i}`).length;
          assert.equal(got.length + lost, 3, `viewer ${i}: each datagram once, or counted (${got}, ${lost} failed)`);
          assert.equal([...got].sort().join(''), got, `viewer ${i}: in order (${got})`);
        });
      }),
      { numRuns: 500 },
    );
  });
});

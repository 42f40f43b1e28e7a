/**
 * The relay's datagrams in. With the native helper (native.ts): a batch per recvmmsg(2). Node's own
 * reading of the socket is stopped; the helper reads a dup of the descriptor on the same event loop,
 * so sends through the dgram socket still work. Without it, or when it cannot take the socket over,
 * node's 'message' event per datagram; should the helper give up later, that takes over too. Either
 * way every datagram reaches `onDatagram`.
 */
import type dgram from 'node:dgram';
import type { Endpoint } from '../../util/net.ts';
import { socketFd, startDgramReading, stopDgramReading, type NativeHelper, type NativeReceiver } from './native.ts';

export interface Receiver {
  /** Whether datagrams come in batches through the helper (false: node's 'message' events). */
  readonly batched: boolean;
  /** Before the socket is closed: the helper reads a dup of its descriptor. */
  stop(): void;
}

export function receiveDatagrams(
  socket: dgram.Socket,
  /** The helper, or undefined for node's 'message' events. */
  native: NativeHelper | undefined,
  /** Longest datagram accepted whole; longer ones arrive one byte longer than this, cut. */
  maxBytes: number,
  onDatagram: (data: Buffer, from: Endpoint) => void,
  /** `fellBack`: the helper gave up and node's own reading has taken over. */
  onError: (errno: number, fellBack: boolean) => void,
): Receiver {
  let stopped = false;
  const byDgram = (): Receiver => {
    socket.on('message', (msg, rinfo) => onDatagram(msg, { address: rinfo.address, port: rinfo.port }));
    return { batched: false, stop: () => {} };
  };
  const fd = native && socketFd(socket);
  if (!native || fd === undefined) return byDgram();
  const onBatch = (data: Buffer, ends: number[], addresses: string[], ports: number[]) => {
    // Views into the batch are free, but a view the relay keeps (NACK history, keyframe cache) keeps
    // the whole batch alive. A batch from one sender pins only that sender's bytes; in a mixed one a
    // stranger's 1500-byte junk could ride along with every kept media packet, so those are copied.
    const mixed = addresses.some((a, i) => a !== addresses[0] || ports[i] !== ports[0]);
    let at = 0;
    // `stopped`: the relay closed while handling this batch; the rest of it is for nobody.
    for (let i = 0; i < ends.length && !stopped; i++) {
      const view = data.subarray(at, ends[i]);
      onDatagram(mixed ? Buffer.from(view) : view, { address: addresses[i], port: ports[i] });
      at = ends[i];
    }
  };
  let receiver: NativeReceiver;
  try {
    receiver = native.startReceiving(fd, maxBytes, onBatch, (errno, gaveUp) => {
      if (gaveUp && !stopped) {
        byDgram();
        startDgramReading(socket);
      }
      onError(errno, gaveUp);
    });
  } catch {
    return byDgram();
  }
  if (!stopDgramReading(socket)) {
    native.stopReceiving(receiver);
    return byDgram();
  }
  return {
    batched: true,
    stop: () => {
      stopped = true;
      native.stopReceiving(receiver);
    },
  };
}

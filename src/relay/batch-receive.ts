/**
 * The relay's datagrams in, a batch per recvmmsg(2) through the native helper (native.ts). Node's
 * own reading of the socket is stopped; the helper reads a dup of the descriptor on the same event
 * loop, so sends through the dgram socket still work. Undefined when the helper or the socket's
 * descriptor is not there: then the caller listens for 'message' as usual. Should the helper give
 * up later, node's own reading takes over and the datagrams go on to `onDatagram` from there.
 */
import type dgram from 'node:dgram';
import type { Endpoint } from './core.ts';
import { socketFd, startDgramReading, stopDgramReading, type NativeHelper, type NativeReceiver } from './native.ts';

export interface BatchReceiver {
  stop(): void;
}

export function receiveInBatches(
  socket: dgram.Socket,
  native: NativeHelper,
  /** Longest datagram accepted whole; longer ones arrive one byte longer than this, cut. */
  maxBytes: number,
  onDatagram: (data: Buffer, from: Endpoint) => void,
  /** `fellBack`: the helper gave up and node's own reading has taken over. */
  onError: (errno: number, fellBack: boolean) => void,
): BatchReceiver | undefined {
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  let stopped = false;
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
  const fallBack = () => {
    socket.on('message', (msg, rinfo) => onDatagram(msg, { address: rinfo.address, port: rinfo.port }));
    startDgramReading(socket);
  };
  let receiver: NativeReceiver;
  try {
    receiver = native.startReceiving(fd, maxBytes, onBatch, (errno, gaveUp) => {
      if (gaveUp && !stopped) fallBack();
      onError(errno, gaveUp);
    });
  } catch {
    return undefined;
  }
  if (!stopDgramReading(socket)) {
    native.stopReceiving(receiver);
    return undefined;
  }
  return {
    stop: () => {
      stopped = true;
      native.stopReceiving(receiver);
    },
  };
}

/**
 * A datagram or payload that does not follow its format. Receive loops catch exactly this
 * type, count it and drop the datagram; anything else escaping a parser is a bug in udpcast.
 */
export class PacketError extends Error {
  override name = 'PacketError';
}

/**
 * `read()`'s value, or `otherwise` when the bytes are malformed (it threw a PacketError). Any other
 * error is a bug and passes through.
 */
export function unlessMalformed<T, U>(read: () => T, otherwise: U): T | U {
  try {
    return read();
  } catch (err) {
    if (err instanceof PacketError) return otherwise;
    throw err;
  }
}

/** Throws a PacketError unless `need` bytes are available; the message counts bytes. */
export function need(what: string, have: number, need: number): void {
  if (have < need) {
    throw new PacketError(`${what}: need ${need} bytes, have ${have}`);
  }
}

/**
 * The two kinds of error udpcast expects: a person's (UsageError) and a packet's (PacketError).
 * Anything else is a bug.
 */

/**
 * Errors a person caused, as opposed to bugs or broken packets (PacketError, below). The CLI
 * prints a UsageError's message on one line and exits 2, with no stack trace: the message itself
 * must say what to type instead.
 */
export class UsageError extends Error {
  override name = 'UsageError';
}

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

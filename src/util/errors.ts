/**
 * Errors a person caused, as opposed to bugs or broken packets (those are PacketError, in
 * src/transport/errors.ts). The CLI prints a UsageError's message on one line and exits 2, with no
 * stack trace: the message itself must say what to type instead.
 */
export class UsageError extends Error {
  override name = 'UsageError';
}

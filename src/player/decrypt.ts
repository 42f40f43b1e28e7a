/**
 * The viewer's decryption step, first in the media pipeline. With --encrypt every RTP packet is
 * AES-GCM (RFC 7714) under keys from the stream's salt, which the relay's ACK carries; a packet
 * that fails is counted and dropped. It also tells a settings mistake from line noise: a stream
 * encrypted or not against what watch was told, or a run of failures before any frame (a wrong
 * passphrase), is `fatal` (watch exits 2) rather than a counter that quietly grows.
 */
import { MediaUnprotector, readRoc, streamKeys, type MasterKey } from '../transport/secure.ts';
import { PacketError } from '../util/errors.ts';

/** Failed decryptions before any frame that mean the passphrase is wrong, not a damaged packet. */
const UNDECRYPTABLE_LIMIT = 50;

export class MediaDecryptor {
  /** Encrypted packets that failed authentication (wrong key, damage) or came before the salt. */
  undecryptable = 0;
  /** Why watching cannot go on, once it cannot. */
  fatal?: string;
  private unprotector?: MediaUnprotector;
  private salt?: Buffer;

  /** `master`: --encrypt's key; undefined when the stream is expected in the clear. */
  constructor(private readonly master?: MasterKey) {}

  /** The stream's salt (from the relay's ACK): media keys follow from it. Ignored in the clear. */
  setSalt(salt: Buffer): void {
    if (!this.master || this.salt?.equals(salt)) return;
    this.salt = Buffer.from(salt); // a view into the ACK datagram otherwise
    this.unprotector = new MediaUnprotector(streamKeys(this.master, this.salt).media);
  }

  /**
   * The plain packet, or undefined when it must be dropped. `framesSoFar`: whole frames handed
   * out so far (failures after one are damage, not a wrong key). Throws PacketError on a header
   * too malformed to tell.
   */
  open(buf: Buffer, framesSoFar: number): Buffer | undefined {
    const encrypted = readRoc(buf) !== undefined;
    if (!this.master) {
      if (encrypted) this.fatal ??= 'the stream is encrypted: watch with --encrypt PASSPHRASE (the sharer\'s --encrypt)';
      return encrypted ? undefined : buf;
    }
    if (!encrypted) {
      // We were told to expect encryption: plain pictures mean the sharer is not using --encrypt.
      this.fatal ??= 'the stream is not encrypted: the sharer runs without --encrypt (watch without it, or ask them to use it)';
      return undefined;
    }
    if (!this.unprotector) {
      this.undecryptable++; // no salt yet (the ACK carries it)
      return undefined;
    }
    try {
      return this.unprotector.unprotect(buf);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      this.undecryptable++;
      if (this.undecryptable >= UNDECRYPTABLE_LIMIT && framesSoFar === 0) {
        this.fatal ??= 'cannot decrypt the stream: check --encrypt (it must be the sharer\'s --encrypt)';
      }
      return undefined;
    }
  }
}

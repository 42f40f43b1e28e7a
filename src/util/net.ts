/**
 * Addresses, as every part of udpcast names them: where a datagram comes from or goes to
 * (Endpoint), what a person typed (HostPort), and the one DNS look-up watch and share make.
 */
import { lookup } from 'node:dns/promises';
import { UsageError } from './errors.ts';

/** A UDP address: where a datagram came from or goes to. */
export interface Endpoint {
  address: string;
  port: number;
}

/** HOST:PORT as a person typed it (the host not yet resolved). */
export interface HostPort {
  host: string;
  port: number;
}

/** `host` resolved once; a name that does not resolve is the person's error, said in one line. */
export async function resolveHost(host: string): Promise<{ address: string; family: 4 | 6 }> {
  try {
    const r = await lookup(host);
    return { address: r.address, family: r.family === 6 ? 6 : 4 };
  } catch {
    throw new UsageError(`cannot resolve host ${JSON.stringify(host)}: check the name or use an IP address`);
  }
}

/** `address:port`, with an IPv6 address in brackets. */
export function formatEndpoint(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

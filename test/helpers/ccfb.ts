/**
 * A viewer's RFC 8888 report for the layer-choice tests: `n` packets of SSRC 1 from `first`,
 * logged as sent 10 ms apart ending 450 ms before `at`, each arriving `queue(k)` ms later than the
 * least delayed one (a queue building up, or none).
 */
import type { SendLog } from '../../src/transport/congestion.ts';
import type { Ccfb } from '../../src/transport/rtcp.ts';

export function ccfbReport(log: SendLog, first: number, n: number, at: number, queue: (k: number) => number = () => 0, bytes = 1200): Ccfb {
  for (let i = first; i < first + n; i++) log.onSent(1, i, bytes, at - 500 + (i - first) * 10);
  return {
    type: 'ccfb', senderSsrc: 2, reportTimestamp: Math.round(((at + 1000) / 1000) * 65536),
    streams: [{ ssrc: 1, beginSeq: first, packets: Array.from({ length: n }, (_, k) => ({ received: true, ecn: 0, ato: Math.round((500 - k * 10 - 50 - queue(k)) * 1.024) })) }],
  };
}

/**
 * A browser's REMB (draft-alvestrand-rmcat-remb-03: its own estimate of its path) at the relay
 * (issue 17). Golden REMBs built byte by byte from the draft's layout, read by werift as the relay
 * reads them; then a WHEP player (werift's peer connection) that offers goog-remb and sends no
 * transport-wide feedback, as such a browser: the answer offers goog-remb back, a low REMB moves it
 * to the stream's lower layer and one naming plenty lets it back up, and REMBs naming no rate, an
 * absurd one or another identifier are counted and dropped while the relay goes on.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RtcpPacketConverter, RtcpPayloadSpecificFeedback, ReceiverEstimatedMaxBitrate } from 'werift';
import { rembKbps } from '../src/relay/webrtc/viewers.ts';
import { udpcast, killAll, freePort, waitFor, type Running } from './helpers/cli.ts';
import { freeTcpPort } from '../bench/lib.ts';
import { skipUnless } from './helpers/tools.ts';
import { lastStats } from './helpers/decode.ts';
import { whepPlay, type WhepPlayer } from './helpers/whep.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-remb-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A REMB (draft §2.2), the whole RTCP packet:
 *
 *   |V=2|P| FMT=15  |   PT=206      |             length            |
 *   |                  SSRC of packet sender                        |
 *   |                  SSRC of media source (0)                     |
 *   |  Unique identifier 'R' 'E' 'M' 'B'                            |
 *   |  Num SSRC     | BR Exp    |  BR Mantissa                      |
 *   |   SSRC feedback ...                                           |
 *
 * The rate is mantissa × 2^exp bit/s. `id`: the identifier, for one that is not REMB's.
 */
function remb(exp: number, mantissa: number, ssrcs: number[], id = 'REMB'): Buffer {
  const b = Buffer.alloc(20 + 4 * ssrcs.length);
  b[0] = 0x80 | 15;
  b[1] = 206;
  b.writeUInt16BE(b.length / 4 - 1, 2);
  b.writeUInt32BE(0x1234, 4);
  b.writeUInt32BE(0, 8);
  b.write(id, 12, 'latin1');
  b[16] = ssrcs.length;
  b[17] = (exp << 2) | (mantissa >> 16);
  b.writeUInt16BE(mantissa & 0xffff, 18);
  ssrcs.forEach((s, i) => b.writeUInt32BE(s, 20 + 4 * i));
  return b;
}

/** What the relay reads from `packet`: werift's parse, then rembKbps (undefined when werift gives no REMB). */
function read(packet: Buffer): number | undefined {
  const [p] = RtcpPacketConverter.deSerialize(packet);
  return p instanceof RtcpPayloadSpecificFeedback && p.feedback instanceof ReceiverEstimatedMaxBitrate ? rembKbps(p.feedback) : undefined;
}

describe('a REMB read as the relay reads it (no network)', () => {
  test('mantissa × 2^exp bit/s, in kbit/s; 0, past 10 Gbit/s, another identifier: none', () => {
    assert.equal(read(remb(3, 187_500, [0xabcd])), 1500);
    assert.equal(read(remb(0, 100_000, [])), 100, 'no SSRC listed: still a rate');
    assert.equal(read(remb(16, 152_587, [1, 2])), 9_999_941.632, 'just under 10 Gbit/s');
    assert.equal(read(remb(16, 152_588, [1])), undefined, 'just over');
    assert.equal(read(remb(0, 0, [1])), undefined, 'a rate of 0');
    assert.equal(read(remb(63, 0x3ffff, [1])), undefined, 'werift reads an exponent past 46 as 2^64 - 1');
    assert.equal(read(remb(3, 187_500, [1], 'XXXX')), undefined, 'application feedback, not REMB');
    // Cut short (no rate): werift drops it before the relay sees anything.
    assert.equal(read(remb(3, 187_500, []).subarray(0, 16)), undefined);
  });
});

/** `p`, or a failure after `ms`; the timer cleared either way (a pending one would hold the test's process open). */
async function within(p: Promise<void>, ms: number, why: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(why)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe("a browser's REMB caps its layer", { skip: skipUnless('ffmpeg') }, () => {
  let relay: Running | undefined;
  let share: Running | undefined;
  let player: WhepPlayer | undefined;
  after(async () => {
    await player?.close();
    relay?.child.kill('SIGKILL');
    share?.child.kill('SIGKILL');
  });

  test('goog-remb answered where offered; a low REMB moves the player down a layer, one naming plenty back up; broken ones are counted, dropped', { timeout: 30_000 }, async (t) => {
    const started = Date.now();
    const port = await freePort();
    const httpPort = await freeTcpPort();
    const stats = join(dir, 'relay.json');
    relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', '0', '--http', String(httpPort), '--no-dashboard', '--stats-json', stats]);
    // Started together: the sharer repeats its PUBLISH until the relay answers.
    share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '640x360', '--layers', '2', '--duration', '30', '--no-dashboard']);
    await waitFor(() => /publisher/.test(relay!.stderrText()), 15_000, 'the sharer to publish');
    const log = () => relay!.stderrText();

    // Offers goog-remb (as Firefox or a Chromium without transport-cc does), no transport-wide feedback.
    // Published is not yet pictured: 404 ("no picture of it yet") until the first keyframe is in.
    const offerUntil = Date.now() + 10_000;
    for (;;) {
      player = await whepPlay(`http://127.0.0.1:${httpPort}/whep/main`, {
        transportCc: false,
        offer: (sdp) => sdp.replace(/(a=rtcp-fb:(\d+) nack pli\r\n)/g, '$1a=rtcp-fb:$2 goog-remb\r\n'),
      });
      if (player.status !== 404 || Date.now() > offerUntil) break;
      await player.close();
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(player.status, 201, player.text);
    const video = player.text.split(/\r\nm=/).find((s) => s.startsWith('video'))!;
    const pt = /^video \d+ \S+ (\d+)/.exec(video)![1];
    assert.ok(video.includes(`a=rtcp-fb:${pt} goog-remb\r\n`), `the answer's picture section offers goog-remb:\n${video}`);
    assert.ok(!video.includes('transport-cc'), 'and not transport-cc, which the offer did not have');
    await within(player.connected, 10_000, 'no ICE and DTLS in 10 s');
    await waitFor(() => player!.video.length > 0, 5000, 'picture packets');
    const ssrc = player.video[0].readUInt32BE(8);

    // Broken ones first: the relay counts them, drops them, and goes on.
    for (const bad of [remb(0, 0, [ssrc]), remb(63, 0x3ffff, [ssrc]), remb(3, 187_500, [ssrc], 'XXXX'), remb(3, 187_500, []).subarray(0, 16)]) await player.sendRtcp(bad);

    // 100 kbit/s (exp 0), below both layers: to the lowest, at its next keyframe. Sent every 250
    // ms until the relay has measured the layers' rates and moved the player.
    const every = (packet: Buffer) => setInterval(() => void player!.sendRtcp(packet), 250);
    let timer = every(remb(0, 100_000, [ssrc]));
    try {
      await waitFor(() => /viewer [^\n]* to layer 1 at its next keyframe \(down: the viewer estimates its path at 100 kbit\/s\)/.test(log()), 10_000, 'the relay to move the player down');
      const downAt = Date.now();
      await waitFor(() => /viewer [^\n]* now gets layer 1\n/.test(log()), 3000, "the lower layer's keyframe");
      // 50 Mbit/s (50,000 × 2^10): back up once the back-off is over and the room has lasted.
      clearInterval(timer);
      timer = every(remb(10, 50_000, [ssrc]));
      await waitFor(() => /viewer [^\n]* to layer 0 at its next keyframe \(up: the viewer's estimate of its path has had room/.test(log()), 10_000, 'the relay to move the player back up');
      const upAt = Date.now();
      await waitFor(() => /viewer [^\n]* now gets layer 0\n/.test(log()), 3000, "the top layer's keyframe");
      t.diagnostic(`down ${downAt - started} ms after the start, up ${upAt - downAt} ms after the down`);
      assert.ok(upAt - downAt >= 4500, `up ${upAt - downAt} ms after the down: not within its back-off`);
    } finally {
      clearInterval(timer);
    }
    const s = lastStats(readFileSync(stats, 'utf8'));
    t.diagnostic(`webrtc: ${JSON.stringify(s.webrtc)}; layer moves ${s.layerMoves}`);
    assert.equal(s.webrtc.rembDropped, 3, 'three broken REMBs reached the relay (werift dropped the one cut short)');
    assert.ok(s.webrtc.rembReports >= 10, `${s.webrtc.rembReports} REMBs read`);
    assert.equal(s.webrtc.congestionReports, 0, 'REMB alone moved it');
    assert.equal(s.circuitBreaks, 0);
    assert.equal(relay.child.exitCode, null, 'the relay runs on');
  });
});

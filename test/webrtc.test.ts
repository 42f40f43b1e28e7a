/**
 * Browsers as viewers (issue 17): WHEP answered by the relay, the picture forwarded as the sharer
 * encoded it. Judges: a WHEP player other than the page (werift's peer connection) whose picture
 * real ffmpeg decodes, through 5% loss repaired from the relay's history; and real Chromium
 * playing the relay's own page: frames rising, a screenshot that ffmpeg finds is not black, a late
 * joiner's first picture within 1 s mid-GOP, and a closed tab freeing its viewer at the relay.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { narrowOffer } from '../src/relay/webrtc/offer.ts';
import { SYNC_START_MS } from '../src/relay/http/pages.ts';
import { h264WebrtcFormat } from '../src/codecs/h264/webrtc.ts';
import { codec } from '../src/codecs/registry.ts';
import { parseRtp } from '../src/rtp/packet.ts';
import { udpcast, killAll, freePort, waitFor, sleep, type Running } from './helpers/cli.ts';
import { freeTcpPort } from '../bench/lib.ts';
import { skipUnless } from './helpers/tools.ts';
import { whepPlay, type WhepPlayer } from './helpers/whep.ts';
import { launchChromium, meanLuma, type Browser } from './helpers/browser.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-webrtc-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** The picture part of an offer as Chromium 156 makes it (recvonly), with VP8 and RTX around the H.264 formats. */
const CHROMIUM_LIKE_OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 107 108 109 114 115 116',
  'c=IN IP4 0.0.0.0',
  'a=mid:0',
  'a=recvonly',
  'a=rtpmap:96 VP8/90000',
  'a=rtcp-fb:96 nack',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'a=rtpmap:103 H264/90000',
  'a=rtcp-fb:103 nack',
  'a=rtcp-fb:103 nack pli',
  'a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f',
  'a=rtpmap:104 rtx/90000',
  'a=fmtp:104 apt=103',
  'a=rtpmap:107 H264/90000',
  'a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f',
  'a=rtpmap:108 H264/90000',
  'a=rtcp-fb:108 nack',
  'a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
  'a=rtpmap:109 H264/90000',
  'a=fmtp:109 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f',
  'a=rtpmap:114 H264/90000',
  'a=fmtp:114 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f',
  'a=rtpmap:115 red/90000',
  'a=rtpmap:116 ulpfec/90000',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 0',
  'c=IN IP4 0.0.0.0',
  'a=mid:1',
  'a=recvonly',
  'a=rtpmap:111 opus/48000/2',
  'a=rtcp-fb:111 transport-cc',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:63 red/48000/2',
  'a=rtpmap:0 PCMU/8000',
  '',
].join('\r\n');

/** An SPS's first bytes: NAL header, profile_idc, constraint flags, level_idc. */
const sps = (profile: number, constraints: number) => Buffer.from([0x67, profile, constraints, 0x1f, 0xac]);

describe('the offer, cut to what the relay forwards (no network)', () => {
  const pick = (s: Buffer | undefined) => (offered: Parameters<typeof h264WebrtcFormat>[0]) => h264WebrtcFormat(offered, s);

  test("a constrained Baseline stream (x264's ultrafast) gets Chromium's constrained Baseline format, mode 1", () => {
    const r = narrowOffer(CHROMIUM_LIKE_OFFER, pick(sps(0x42, 0xc0)));
    assert.ok(!('error' in r), JSON.stringify(r));
    assert.equal(r.video, 108);
    assert.equal(r.audio, 111);
    const lines = r.sdp.split('\r\n');
    assert.ok(lines.includes('m=video 9 UDP/TLS/RTP/SAVPF 108'), r.sdp);
    assert.ok(lines.includes('m=audio 9 UDP/TLS/RTP/SAVPF 111'), r.sdp);
    // Only the chosen formats' attributes are left; everything else of the section stays.
    assert.deepEqual(lines.filter((l) => /^a=(rtpmap|fmtp|rtcp-fb):/.test(l)).map((l) => l.split(' ')[0]), [
      'a=rtpmap:108', 'a=rtcp-fb:108', 'a=fmtp:108', 'a=rtpmap:111', 'a=rtcp-fb:111', 'a=fmtp:111',
    ]);
    assert.ok(lines.includes('a=group:BUNDLE 0 1') && lines.includes('a=mid:0') && lines.includes('a=recvonly'));
    assert.ok(r.sdp.endsWith('\r\n'));
  });

  test('Main goes to Main; High to the High 4:4:4 decoder; no SPS yet reads as constrained Baseline', () => {
    const video = (s: Buffer | undefined) => {
      const r = narrowOffer(CHROMIUM_LIKE_OFFER, pick(s));
      return 'error' in r ? r.error : r.video;
    };
    assert.equal(video(sps(0x4d, 0x40)), 109);
    assert.equal(video(sps(0x64, 0x00)), 114);
    assert.equal(video(sps(0x42, 0x00)), 103, 'plain Baseline: its own profile');
    assert.equal(video(undefined), 108);
  });

  test('an offer that cannot take the stream as it is: an error a person can read, not a picture that does not decode', () => {
    const noH264 = CHROMIUM_LIKE_OFFER.split('\r\n').filter((l) => !/H264|:10[3-9] |:114 /.test(l)).join('\r\n');
    const r = narrowOffer(noH264, pick(sps(0x42, 0xc0)));
    assert.ok('error' in r && /no picture format/.test(r.error), JSON.stringify(r));
    // Hi10 (profile 110) is not in what Chromium decodes.
    const hi10 = narrowOffer(CHROMIUM_LIKE_OFFER, pick(sps(0x6e, 0x00)));
    assert.ok('error' in hi10);
    assert.ok('error' in narrowOffer('hello', pick(undefined)));
    assert.ok('error' in narrowOffer('v=0\r\ns=-\r\n', pick(undefined)));
  });

  test('a data channel section is rejected with port 0, the rest kept', () => {
    const withData = CHROMIUM_LIKE_OFFER + 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n';
    const r = narrowOffer(withData, pick(sps(0x42, 0xc0)));
    assert.ok(!('error' in r));
    assert.ok(r.sdp.includes('m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n'), r.sdp);
  });
});

/** ffmpeg's verdict on an H.264 elementary stream: frames decoded and error lines. */
function decode(file: string): { frames: number; errors: string[] } {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-f', 'h264', '-i', file, '-f', 'null', '-', '-v', 'error', '-stats_period', '1000'], { encoding: 'utf8' });
  const count = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', '-f', 'h264', file], { encoding: 'utf8' });
  return { frames: Number(count.stdout.trim()), errors: r.stderr.split('\n').filter((l) => l.trim() !== '') };
}

/**
 * The received picture packets put in order (a repair comes after the packets that followed the
 * lost one; the player has no jitter buffer of its own), depacketized by udpcast's own H.264
 * depacketizer, as Annex B.
 */
function annexB(packets: Buffer[], settled = packets.length): { data: Buffer; dropped: number } {
  const byNumber = new Map<number, Buffer>();
  let last: number | undefined;
  let until = Infinity;
  for (const [i, p] of packets.entries()) {
    // Numbers past the newest of the first `settled` packets may still have repairs on their way.
    if (i === settled) until = last!;
    const seq = p.readUInt16BE(2);
    // The 16-bit number extended, nearest to the last one extended.
    const ext = last === undefined ? seq : last + ((((seq - last) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
    last = last === undefined ? ext : Math.max(last, ext);
    byNumber.set(ext, p);
  }
  const d = codec('h264').depacketizer();
  const frames: Buffer[] = [];
  for (const [, p] of [...byNumber].filter(([n]) => n <= until).sort((a, b) => a[0] - b[0])) for (const f of d.pushAll(parseRtp(p))) frames.push(f.data);
  return { data: Buffer.concat(frames), dropped: d.counters.framesDropped };
}

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(url, init);
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the text
  }
  return { status: r.status, body, headers: r.headers };
}

function lastStats(file: string): any {
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  return JSON.parse(lines.at(-1)!);
}

describe('relay --http serves browsers over WebRTC (WHEP)', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  let relay: Running;
  let share: Running;
  let base: string;
  let relayStats: string;
  let shareStats: string;

  after(() => {
    relay?.child.kill('SIGKILL');
    share?.child.kill('SIGKILL');
  });

  test('a WHEP player other than the page plays: 5 s of picture through 5% loss, repaired from the relay, decoded by ffmpeg with no error', { timeout: 90_000 }, async (t) => {
    const port = await freePort();
    const httpPort = await freeTcpPort();
    base = `http://127.0.0.1:${httpPort}`;
    relayStats = join(dir, 'relay.json');
    shareStats = join(dir, 'share.json');
    relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', '0', '--http', String(httpPort), '--no-dashboard', '--stats-json', relayStats]);
    await waitFor(() => relay.stderrText().includes(`http://127.0.0.1:${httpPort}/streams.json`), 10_000, 'the relay to say its HTTP address');
    // A long GOP (20 s): every join below is mid-GOP, served from the relay's keyframe cache.
    // One layer: the picture a browser gets is the one the test judges (layer moves are the relay's, tested in its own tests).
    share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '640x360', '--layers', '1', '--gop', '600', '--audio', 'test', '--duration', '80', '--no-dashboard', '--stats-json', shareStats]);
    await waitFor(() => /publisher/.test(relay.stderrText()), 15_000, 'the sharer to publish');
    await sleep(1500);

    let player: WhepPlayer | undefined;
    try {
      player = await whepPlay(`${base}/whep/main`, { loss: 0.05 });
      assert.equal(player.status, 201, player.text);
      assert.match(player.location ?? '', /^\/whep\/main\/[0-9a-f]{24}$/);
      assert.match(player.text, /^v=0\r\n/);
      // Picture and sound in one media stream (a=msid): what a browser plays in sync.
      const msids = player.text.split('\r\n').filter((l) => l.startsWith('a=msid:')).map((l) => l.split(' ')[0]);
      assert.equal(msids.length, 2, player.text);
      assert.equal(msids[0], msids[1], 'one stream for both tracks');
      await Promise.race([player.connected, sleep(10_000).then(() => assert.fail('no ICE and DTLS in 10 s'))]);
      await sleep(6000);
      const settled = player.video.length;
      await sleep(500); // the repairs of the last losses (the relay answers within a round trip)
      const { data, dropped } = annexB(player.video, settled);
      const file = join(dir, 'whep.h264');
      writeFileSync(file, data);
      const verdict = decode(file);
      const rs = lastStats(relayStats);
      t.diagnostic(`${player.video.length} picture packets (${player.dropped} dropped on purpose, ${dropped} frames incomplete), ${player.audioPackets} sound packets; ffmpeg decoded ${verdict.frames} frames; the relay repaired ${rs.retransmissions}, could not ${rs.rtxMisses}; layer moves ${rs.layerMoves}, circuit breaks ${rs.circuitBreaks}`);
      assert.deepEqual(verdict.errors, []);
      assert.ok(verdict.frames >= 5 * 25, `${verdict.frames} frames decoded in 6 s`);
      assert.ok(player.dropped > 10, `only ${player.dropped} packets dropped: the loss was not tried`);
      assert.equal(dropped, 0, `${dropped} frames could not be completed: losses were not repaired`);
      assert.ok(player.audioPackets > 5 * 40, `${player.audioPackets} Opus packets in 6 s`);
      // The sender reports carry the sharer's capture clock: between two of a track, the NTP time
      // moved as far as the RTP time did (a sender that paired its send time with the last
      // packet's capture time would be off by its pacing; werift's own were off by up to 1 s).
      for (const [kind, rate] of [['video', 90], ['audio', 48]] as const) {
        const r = player.reports[kind].filter((x, i, all) => i === 0 || x.ntpMs !== all[i - 1].ntpMs);
        assert.ok(r.length >= 2, `${r.length} distinct ${kind} sender reports in 6 s`);
        const worst = Math.max(...r.slice(1).map((x, i) => Math.abs(x.ntpMs - r[i].ntpMs - ((x.rtp - r[i].rtp) >>> 0) / rate)));
        t.diagnostic(`${kind}: ${r.length} sender reports, NTP against RTP time off by at most ${worst.toFixed(2)} ms`);
        assert.ok(worst <= 5, `${kind} sender reports: NTP and RTP time apart by ${worst} ms`);
      }
      await sleep(1200);
      const s = lastStats(relayStats);
      assert.ok(s.retransmissions > 10, `the relay repaired ${s.retransmissions} packets from its history`);
      assert.equal(s.webrtc.joined, 1);
      // The round trip from the browser's receiver reports against the relay's sender reports
      // (each report its own NTP time: a repeated one was read against the wrong report, short by
      // up to 1.5 s, below zero even).
      const rtt = s.perViewer.find((v: { address: string }) => v.address.startsWith('127.0.0.1'))?.rttMs;
      t.diagnostic(`round trip ${rtt} ms`);
      assert.ok(typeof rtt === 'number' && rtt >= 0 && rtt < 100, `round trip ${rtt} ms on loopback`);
      // /metrics has the browsers' figures too, from the same snapshot as --stats-json.
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /^udpcast_relay_webrtc_joined_total 1$/m);
      assert.match(metrics, /^udpcast_relay_webrtc_sessions_now 1$/m);

      // WHEP's DELETE of the session's resource: the viewer leaves at once.
      const del = await fetch(base + player.location, { method: 'DELETE' });
      assert.equal(del.status, 200);
      assert.equal((await fetch(base + player.location, { method: 'DELETE' })).status, 404, 'and is gone');
      await waitFor(() => /viewer .* left \(0 watching\)/.test(relay.stderrText()), 3000, 'the relay to drop the viewer');
    } finally {
      await player?.close();
    }
  });

  test('what WHEP refuses, each with its status and a line: no stream, not SDP, an offer without H.264, PATCH, a body too big', async () => {
    assert.ok(base, 'the first test started the relay');
    const offer = (body: string, type = 'application/sdp') => fetch(`${base}/whep/main`, { method: 'POST', headers: { 'Content-Type': type }, body });
    const none = await fetch(`${base}/whep/nothing`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: CHROMIUM_LIKE_OFFER });
    assert.equal(none.status, 404);
    assert.match(await none.text(), /no stream nothing/);
    assert.equal((await offer(CHROMIUM_LIKE_OFFER, 'text/plain')).status, 415);
    const vp8only = await offer(CHROMIUM_LIKE_OFFER.split('\r\n').filter((l) => !/H264|:10[3-9] |:114 /.test(l)).join('\r\n'));
    assert.equal(vp8only.status, 415);
    assert.match(await vp8only.text(), /without transcoding/);
    assert.equal((await offer('not an offer at all')).status, 415);
    const patch = await fetch(`${base}/whep/main/abc`, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag' }, body: 'a=end-of-candidates' });
    assert.equal(patch.status, 405);
    assert.match(patch.headers.get('allow') ?? '', /POST, DELETE/);
    assert.equal((await offer('v=0\r\n' + 'a=x\r\n'.repeat(20_000))).status, 413);
    const pre = await fetch(`${base}/whep/main`, { method: 'OPTIONS' });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    assert.match(pre.headers.get('access-control-expose-headers') ?? '', /Location/);
    // And it goes on serving.
    assert.equal((await json(`${base}/streams.json`)).status, 200);
    await sleep(1200);
    const s = lastStats(relayStats);
    assert.ok(s.webrtc.refused >= 3, JSON.stringify(s.webrtc));
  });

  test('a browser on a narrower path than the stream is paused by the circuit breaker (RFC 8083), not flooded', { timeout: 60_000 }, async (t) => {
    assert.ok(base, 'the first test started the relay');
    const breaksBefore = lastStats(relayStats).circuitBreaks;
    // 1.2 Mbit/s with a 30 kB queue in front of the player (about 200 ms of it); the stream is about 3.8 Mbit/s.
    const player = await whepPlay(`${base}/whep/main`, { bottleneckKbps: 1200, bufferBytes: 30_000 });
    try {
      assert.equal(player.status, 201, player.text);
      await Promise.race([player.connected, sleep(10_000).then(() => assert.fail('no ICE and DTLS in 10 s'))]);
      await waitFor(() => /viewer [^\n]* paused: [^\n]*circuit breaker/.test(relay.stderrText()), 20_000, 'the relay to pause the browser');
      const line = relay.stderrText().split('\n').find((l) => /paused: .*circuit breaker/.test(l));
      t.diagnostic(`${line}; ${player.video.length} packets through, ${player.dropped} dropped at the bottleneck`);
      await sleep(1200);
      assert.ok(lastStats(relayStats).circuitBreaks > breaksBefore);
      // Paused: nothing more comes while the breaker holds (10 s).
      const got = player.video.length;
      await sleep(2000);
      assert.ok(player.video.length - got < 20, `${player.video.length - got} packets came while paused`);
    } finally {
      if (player.location) await fetch(base + player.location, { method: 'DELETE' }).catch(() => undefined);
      await player.close();
    }
  });

  test('Chromium plays the watch page: frames rising for 5 s, not black; a late joiner mid-GOP sees a picture within 1 s; a closed tab frees its viewer', { skip: skipUnless('chromium'), timeout: 120_000 }, async (t) => {
    assert.ok(base, 'the first test started the relay');
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const index = await browser.open(`${base}/`);
      await waitForAsync(async () => (await index.evaluate<string>('document.getElementById("list").textContent')).includes('640x360'), 5000, 'the index page to list the stream');
      const href = await index.evaluate<string>('document.querySelector("#list a").getAttribute("href")');
      assert.equal(href, '/watch/main');
      await index.close();

      const tab = await browser.open(`${base}${href}`);
      const frames = () => tab.evaluate<{ shown: number; decoded: number; width: number; samples: number; concealed: number; silent: number }>(
        `(async () => { let decoded = 0, samples = 0, concealed = 0, silent = 0; if (pc) (await pc.getStats()).forEach((s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'video') decoded = s.framesDecoded;
            if (s.type === 'inbound-rtp' && s.kind === 'audio') { samples = s.totalSamplesReceived; concealed = s.concealedSamples; silent = s.silentConcealedSamples; } });
          return { shown: video.getVideoPlaybackQuality().totalVideoFrames, decoded, width: video.videoWidth, samples, concealed, silent }; })()`,
      );
      await waitForAsync(async () => (await frames()).shown > 0, 5000, 'the first picture in Chromium');
      const first = await frames();
      await sleep(5000);
      const later = await frames();
      t.diagnostic(`Chromium: ${first.shown} -> ${later.shown} frames shown, ${later.decoded} decoded, ${later.width} wide; sound ${first.samples} -> ${later.samples} samples, ${later.concealed} concealed (${later.silent} of them silent)`);
      assert.ok(later.shown - first.shown >= 5 * 25, `${later.shown - first.shown} frames shown in 5 s`);
      assert.ok(later.decoded >= later.shown - 5, JSON.stringify(later));
      assert.equal(later.width, 640);
      // The sharer's Opus plays in the page too, little of it concealed. (Headless, with no sound
      // device, Chromium pulls about half of 48 kHz; 2 s worth in 5 s says it decodes.)
      assert.ok(later.samples - first.samples >= 2 * 48_000, `${later.samples - first.samples} sound samples in 5 s`);
      // Silence the sharer leaves out (DTX) Chromium fills by concealing, counted apart when what it
      // made was silent (webrtc-stats silentConcealedSamples): the rest is what a listener hears.
      const heard = later.concealed - later.silent;
      assert.ok(heard < 0.05 * later.samples, `${heard} of ${later.samples} sound samples concealed with something not silent (${later.silent} more silent)`);
      const luma = await meanLuma(await tab.screenshot());
      t.diagnostic(`screenshot mean luma ${luma}`);
      assert.ok(luma > 40, `the page is black (mean luma ${luma})`);

      // A late joiner: nobody asks the sharer for a keyframe (its GOP is 20 s), so its picture is the relay's cache.
      await sleep(1200);
      const { keyframesSent: keyframesBefore, keyframeRequests: requestsBefore } = lastStats(shareStats);
      const late = await browser.open(`${base}${href}`);
      await waitForAsync(async () => (await late.evaluate<number | null>('firstPictureMs ?? null')) !== null, 5000, 'the late joiner to show a picture');
      const firstMs = await late.evaluate<number>('firstPictureMs');
      await sleep(1200);
      const { keyframesSent: keyframesAfter, keyframeRequests: requestsAfter } = lastStats(shareStats);
      t.diagnostic(`late joiner: first picture ${firstMs} ms after its page opened (${JSON.stringify(await late.evaluate('steps'))}); sharer keyframes ${keyframesBefore} -> ${keyframesAfter} (its encoder's own: x264's scene cuts)`);
      assert.equal(requestsAfter, requestsBefore, 'the join asked the sharer for a keyframe');
      assert.ok(firstMs < 1000, `first picture ${firstMs} ms after the page opened`);
      // After its catch-up, its pictures wait in Chromium's jitter buffer for their playout time
      // and no longer: the page asks SYNC_START_MS with sound, and lip sync needs it kept. With the
      // catch-up stamped 1 ms apart before the live edge, they waited 2487 ms here (this 20 s GOP;
      // one run), and 0 ms with a 2 s GOP: Chromium's timing fits picture times to arrivals.
      const held = () => late.evaluate<{ ms: number; n: number; target: number | null }>(`(async () => { let o = { ms: 0, n: 0, target: null }; (await pc.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') o = { ms: 1000 * s.jitterBufferDelay, n: s.jitterBufferEmittedCount, target: null }; });
        o.target = pc.getReceivers().find((r) => r.track.kind === 'video').jitterBufferTarget; return o; })()`);
      await sleep(2000); // its catch-up of up to 20 s of GOP done
      const h0 = await held();
      await sleep(2000);
      const h1 = await held();
      const heldMs = (h1.ms - h0.ms) / Math.max(1, h1.n - h0.n);
      t.diagnostic(`late joiner: pictures held ${heldMs.toFixed(1)} ms in the jitter buffer (${h1.n - h0.n} in 2 s), the page's picture target ${h1.target} ms`);
      assert.equal(h1.target, SYNC_START_MS, 'the page with sound starts the picture at the delay the sound starts at');
      assert.ok(heldMs >= 20 && heldMs <= 200, `pictures held ${heldMs.toFixed(1)} ms`);

      // Two browsers watch; closing a tab frees its viewer at the relay.
      const viewers = async () => (await json(`${base}/streams.json`)).body.streams[0].viewers as number;
      await waitForAsync(async () => (await viewers()) === 2, 3000, 'two viewers at the relay');
      const closedAt = Date.now();
      await late.close();
      await waitForAsync(async () => (await viewers()) === 1, 8000, 'the closed tab to leave');
      t.diagnostic(`a closed tab left the relay after ${Date.now() - closedAt} ms`);
    } catch (err) {
      if (browser) t.diagnostic(browser.stderr().split('\n').slice(-30).join('\n'));
      throw err;
    } finally {
      await browser?.close();
    }
  });
});

async function waitForAsync(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

describe("share's embedded relay on the web, and --watch-key on WHEP", { skip: skipUnless('ffmpeg') }, () => {
  test('share --http: the URL to open is printed, and a WHEP player gets the picture from the embedded relay', { timeout: 60_000 }, async () => {
    const httpPort = await freeTcpPort();
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', '0', '--http', String(httpPort), '--source', 'test', '--size', '320x180', '--duration', '20', '--no-dashboard']);
    let player: WhepPlayer | undefined;
    try {
      await waitFor(() => share.stderrText().includes(`open http://127.0.0.1:${httpPort}/ in a browser`), 15_000, 'share to print the page to open');
      await waitFor(() => /publisher/.test(share.stderrText()), 15_000, 'the embedded relay to carry the stream');
      await sleep(500);
      // AEAD_AES_128_GCM here (werift's first choice); the other tests take Chromium's AES-CM.
      player = await whepPlay(`http://127.0.0.1:${httpPort}/whep/main`, { srtp: 'gcm' });
      assert.equal(player.status, 201, player.text);
      await Promise.race([player.connected, sleep(10_000).then(() => assert.fail('no ICE and DTLS in 10 s'))]);
      await waitFor(() => player!.video.length > 100, 5000, 'picture packets from the embedded relay');
    } finally {
      await player?.close();
      share.child.kill('SIGKILL');
    }
  });

  test('a relay with --watch-key: WHEP and the pages without it are 401, with it as a Bearer token they answer', { timeout: 30_000 }, async () => {
    const httpPort = await freeTcpPort();
    const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', '0', '--http', String(httpPort), '--watch-key', 'only us, please', '--no-dashboard']);
    try {
      await waitFor(() => relay.stderrText().includes(`open http://127.0.0.1:${httpPort}/?token=WATCH_KEY in a browser`), 10_000, 'the relay to say its page');
      assert.doesNotMatch(relay.stderrText(), /only us/, 'the key is never printed');
      const post = (headers: Record<string, string>) => fetch(`http://127.0.0.1:${httpPort}/whep/main`, { method: 'POST', headers: { 'Content-Type': 'application/sdp', ...headers }, body: CHROMIUM_LIKE_OFFER });
      assert.equal((await post({})).status, 401);
      assert.equal((await post({ Authorization: 'Bearer not us' })).status, 401);
      assert.equal((await post({ Authorization: 'Bearer only us, please' })).status, 404, 'past the key: no stream main yet');
      assert.equal((await fetch(`http://127.0.0.1:${httpPort}/watch/main`)).status, 401);
      assert.equal((await fetch(`http://127.0.0.1:${httpPort}/watch/main?token=only%20us%2C%20please`)).status, 200);
    } finally {
      relay.child.kill('SIGKILL');
    }
  });
});

/** The width of every frame ffmpeg decodes from an H.264 elementary stream, in order. */
function frameWidths(file: string): number[] {
  const r = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'frame=width', '-of', 'csv=p=0', '-f', 'h264', file], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

/** Pictures among RTP packets: the distinct timestamps of those with the marker bit (a frame's last packet). */
function pictures(packets: Buffer[]): number {
  return new Set(packets.filter((p) => (p[1] & 0x80) !== 0).map((p) => p.readUInt32BE(4))).size;
}

describe("a browser's own path chooses its layer (transport-wide congestion feedback)", { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  test('behind 1.2 Mbit/s a WHEP player is moved to a layer that fits and keeps its frame rate; one on a clean path keeps 1280x720', { timeout: 90_000 }, async (t) => {
    const port = await freePort();
    const httpPort = await freeTcpPort();
    const stats = join(dir, 'layers-relay.json');
    const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', '0', '--http', String(httpPort), '--no-dashboard', '--stats-json', stats]);
    let share: Running | undefined;
    const players: WhepPlayer[] = [];
    try {
      await waitFor(() => relay.stderrText().includes(`http://127.0.0.1:${httpPort}/streams.json`), 10_000, 'the relay to say its HTTP address');
      share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '1280x720', '--layers', '3', '--duration', '40', '--no-dashboard']);
      await waitFor(() => /publisher/.test(relay.stderrText()), 15_000, 'the sharer to publish');
      await sleep(1500);
      // The same link as the UDP viewers' test (layers-e2e): 1.2 Mbit/s with a 30 kB queue; the top layer is 2.5 Mbit/s.
      const narrow = await whepPlay(`http://127.0.0.1:${httpPort}/whep/main`, { bottleneckKbps: 1200, bufferBytes: 30_000 });
      players.push(narrow);
      const clean = await whepPlay(`http://127.0.0.1:${httpPort}/whep/main`);
      players.push(clean);
      for (const p of players) {
        assert.equal(p.status, 201, p.text);
        await Promise.race([p.connected, sleep(10_000).then(() => assert.fail('no ICE and DTLS in 10 s'))]);
      }
      await waitFor(() => /viewer [^\n]*(to layer [12] at its next keyframe|now gets layer [12], from its cache) \(down: /.test(relay.stderrText()), 20_000, 'the relay to move the narrow browser down');
      const move = relay.stderrText().split('\n').find((l) => /\(down: /.test(l));
      // Settled on its layer: the last 5 s of each.
      await sleep(6000);
      const from = players.map((p) => p.video.length);
      await sleep(5000);
      const [n, c] = players.map((p, i) => {
        const file = join(dir, `layers-${i}.h264`);
        writeFileSync(file, annexB(p.video).data);
        return { widths: frameWidths(file), pictures: pictures(p.video.slice(from[i])) };
      });
      const rs = lastStats(stats);
      t.diagnostic(`${move}; narrow: ${n.pictures} pictures in 5 s, last widths ${[...new Set(n.widths.slice(-100))].join('/')}, ${narrow.dropped} dropped at its bottleneck; clean: ${c.pictures} pictures, ${[...new Set(c.widths.slice(-100))].join('/')}; relay: layer moves ${rs.layerMoves}, circuit breaks ${rs.circuitBreaks}`);
      assert.ok(n.widths.slice(-100).every((w) => w < 1280), `the narrow browser's last frames: ${n.widths.slice(-100).join(' ')}`);
      assert.ok(n.pictures >= 5 * 20, `the narrow browser got ${n.pictures} pictures in 5 s`);
      assert.ok(c.widths.slice(-100).every((w) => w === 1280), `the clean browser's last frames: ${c.widths.slice(-100).join(' ')}`);
      assert.ok(c.pictures >= 5 * 25, `the clean browser got ${c.pictures} pictures in 5 s`);
      assert.equal(rs.circuitBreaks, 0, 'a layer that fits, not a pause');
    } finally {
      for (const p of players) await p.close();
      share?.child.kill('SIGKILL');
      relay.child.kill('SIGKILL');
    }
  });
});

/**
 * Publishing into the relay over RTSP (issue 16 point 2): what record.ts makes of a publisher's
 * packets, then FFmpeg's own RTSP output as the publisher (`ffmpeg -f rtsp`, over UDP and TCP, a
 * stream encoded live and one copied from an MP4) and `udpcast watch --output` as the viewer, judged
 * by FFmpeg decoding the recording; with --key, a wrong password is refused and media comes over TCP only.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PT_H264, PT_OPUS } from '../src/defaults.ts';
import { parseAnnounce } from '../src/relay/rtsp/sdp.ts';
import { recordRtcp, recordRtp, recordTracks, trackOfUri, type RecordTrack } from '../src/relay/rtsp/record.ts';
import { parseRtp, serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';
import { udpcast, killAll, exited, freePort, waitFor, sleep, start, type Running } from './helpers/cli.ts';
import { freeTcpPort } from '../bench/lib.ts';
import { skipUnless } from './helpers/tools.ts';
import { conversation } from './helpers/rtsp.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-rtsp-publish-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

// What FFmpeg 5.1's RTSP output ANNOUNCEs for H.264 copied from an MP4 with AAC sound (the
// parameter sets only here), trimmed to the lines read.
const SPS = Buffer.from('Z2QAH6zZQFAFuhAAAAMAEAAAAwPA8YMZYA==', 'base64');
const PPS = Buffer.from('aOvjyyLA', 'base64');
const FFMPEG_SDP = [
  'v=0', 'o=- 0 0 IN IP4 127.0.0.1', 's=No Name', 'c=IN IP4 127.0.0.1', 't=0 0', 'a=tool:libavformat 59.27.100',
  'm=video 0 RTP/AVP 96', 'a=rtpmap:96 H264/90000',
  `a=fmtp:96 packetization-mode=1; sprop-parameter-sets=${SPS.toString('base64')},${PPS.toString('base64')}; profile-level-id=64001F`,
  'a=control:streamid=0',
  'm=audio 0 RTP/AVP 97', 'b=AS:128', 'a=rtpmap:97 MPEG4-GENERIC/48000/2', 'a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13', 'a=control:streamid=1',
  'm=audio 0 RTP/AVP 98', 'a=rtpmap:98 opus/48000/2', 'a=control:streamid=2', '',
].join('\r\n');

const rtp = (pt: number, seq: number, payload: Buffer, ssrc = 0x1234, timestamp = 9000) =>
  serializeRtpToBuffer({ padding: 0, marker: false, payloadType: pt, sequenceNumber: seq, timestamp, ssrc, csrc: [], payload });

describe('what the relay makes of a publisher (record.ts)', () => {
  const tracksOf = (sdp: string): RecordTrack[] => {
    const r = recordTracks(parseAnnounce(sdp)!);
    assert.ok(!('error' in r), JSON.stringify(r));
    return r.tracks;
  };

  test('the tracks of an ANNOUNCE: the picture and Opus are carried, AAC is set up and left out', () => {
    const r = recordTracks(parseAnnounce(FFMPEG_SDP)!);
    assert.ok(!('error' in r));
    assert.deepEqual(r.tracks.map((t) => [t.kind, t.announced.control, t.payloadTypeOut]), [['video', 'streamid=0', PT_H264], ['audio', 'streamid=1', undefined], ['audio', 'streamid=2', PT_OPUS]]);
    assert.deepEqual(r.notCarried, ['audio in MPEG4-GENERIC']);
    assert.equal(trackOfUri(r.tracks, 'rtsp://127.0.0.1:8554/live', 'rtsp://127.0.0.1:8554/live/streamid=2'), r.tracks[2]);
    assert.equal(trackOfUri(r.tracks, 'rtsp://127.0.0.1:8554/live', '/live/streamid=0'), r.tracks[0], 'the path alone');
    assert.equal(trackOfUri(r.tracks, 'rtsp://127.0.0.1:8554/live', 'rtsp://127.0.0.1:8554/other/streamid=0'), undefined, 'another stream');
    assert.deepEqual(recordTracks(parseAnnounce(FFMPEG_SDP.replace(/m=video[\s\S]*?(?=m=audio)/, ''))!), { error: 'it has no picture' });
    assert.match((recordTracks(parseAnnounce(FFMPEG_SDP.replace('H264/90000', 'H265/90000'))!) as { error: string }).error, /not in a codec udpcast carries \(picture in H265/);
    assert.equal(parseAnnounce('hello'), undefined);
  });

  test("udpcast's payload types and an SSRC of its own; parameter sets in-band before an IDR that lacks them", () => {
    const [video, , opus] = tracksOf(FFMPEG_SDP);
    const idr = Buffer.from([0x65, 0x88, 0x84, 0x00]);
    const out = recordRtp(video, rtp(96, 100, idr));
    assert.equal(out.length, 2, 'a STAP-A of SPS and PPS, then the IDR');
    const [stap, first] = out.map((b) => parseRtp(b));
    assert.deepEqual([stap.payloadType, stap.sequenceNumber, stap.ssrc, stap.timestamp], [PT_H264, 100, video.ssrcOut, 9000]);
    assert.deepEqual(stap.payload, Buffer.concat([Buffer.from([0x78, 0, SPS.length]), SPS, Buffer.from([0, PPS.length]), PPS]));
    assert.deepEqual([first.payloadType, first.sequenceNumber, first.payload], [PT_H264, 101, idr]);
    // Numbers go on from the inserted packet; a second slice of the same IDR picture gets nothing.
    const count = (seq: number, payload: Buffer, ts: number) => recordRtp(video, rtp(96, seq, payload, 0x1234, ts)).length;
    assert.equal(count(101, idr, 9000), 1, 'the second slice of that IDR picture');
    assert.deepEqual(parseRtp(recordRtp(video, rtp(96, 102, Buffer.from([0x41, 0x9a]), 0x1234, 12000))[0]).sequenceNumber, 103, 'numbered on after the one inserted');
    assert.equal(count(103, idr, 15000), 2, 'the next IDR picture');
    assert.equal(count(104, idr, 18000), 2, 'an IDR picture right after another (all-intra)');
    // A publisher that sends its SPS in-band, in the IDR's access unit, gets nothing added.
    const sps = Buffer.concat([Buffer.from([0x67]), SPS.subarray(1)]);
    assert.equal(count(105, sps, 21000), 1);
    assert.equal(count(106, idr, 21000), 1, 'the SPS came with it');
    const sound = parseRtp(recordRtp(opus, rtp(98, 7, Buffer.from([0xfc, 1, 2]), 0x99))[0]);
    assert.deepEqual([sound.payloadType, sound.ssrc, sound.sequenceNumber], [PT_OPUS, opus.ssrcOut, 7]);
    assert.equal(recordRtp(opus, rtp(97, 8, Buffer.from([1]), 0x99)).length, 0, 'another payload type on the track');
    assert.equal(opus.dropped, 1);
  });

  test('each sender report goes with the newest of the other track, under the SSRCs chosen here', () => {
    const [video, aac, opus] = tracksOf(FFMPEG_SDP);
    const sr = (ssrc: number, rtpTimestamp: number) => serializeRtcp([{ type: 'sr', ssrc, ntpSec: 1, ntpFrac: 2, rtpTimestamp, packetCount: 3, octetCount: 4, reports: [] }]);
    // FFmpeg reports before its first packet: the report on a track's channel names its SSRC.
    const first = recordRtcp([video, aac, opus], video, sr(0xaaaa, 90));
    assert.deepEqual(parseRtcp(first!).map((p) => p.type === 'sr' && [p.ssrc, p.rtpTimestamp]), [[video.ssrcOut, 90]]);
    assert.equal(recordRtcp([video, aac, opus], aac, sr(0xcccc, 1)), undefined, 'a track not carried');
    const both = recordRtcp([video, aac, opus], opus, sr(0xbbbb, 48));
    assert.deepEqual(parseRtcp(both!).map((p) => p.type === 'sr' && [p.ssrc, p.rtpTimestamp]), [[video.ssrcOut, 90], [opus.ssrcOut, 48]]);
    assert.equal(recordRtcp([video, aac, opus], video, serializeRtcp([{ type: 'rr', ssrc: 0xaaaa, reports: [] }])), undefined, 'no report, nothing');
    assert.equal(recordRtcp([video, aac, opus], video, Buffer.from([1, 2, 3])), undefined, 'garbage');
  });
});

describe('ffmpeg -f rtsp publishes into udpcast relay; udpcast watch records it', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  let relay: Running;
  let port: number;
  let rtsp: number;
  const KEY = 'publish-passphrase';

  /**
   * Publishes `input` to rtsp://…/NAME while `udpcast watch --output` records 4 s of it, joining
   * `joinAfterMs` after the publisher (through `udpcast impair` with `loss`, if given); returns the
   * recording and what watch said.
   */
  async function publishAndWatch(name: string, input: string[], output: string[], transport: 'udp' | 'tcp', o: { joinAfterMs?: number; loss?: string } = {}): Promise<{ file: string; said: string }> {
    const url = `rtsp://127.0.0.1:${rtsp}/${name}`;
    const ff = start('ffmpeg', ['-hide_banner', '-v', 'error', '-re', ...input, '-t', '10', ...output, '-f', 'rtsp', '-rtsp_transport', transport, url]);
    const file = join(dir, `${name}.mkv`);
    let impair: Running | undefined;
    let said = '';
    try {
      await waitFor(() => relay.stderrText().includes(`stream ${name}: publisher rtsp`), 10_000, `ffmpeg to publish ${name}`);
      let target = port;
      if (o.loss) {
        target = await freePort();
        impair = udpcast(['impair', '--listen', `127.0.0.1:${target}`, '--to', `127.0.0.1:${port}`, '--down-loss', o.loss, '--seed', '3']);
      }
      if (o.joinAfterMs) await sleep(o.joinAfterMs);
      const watch = udpcast(['watch', `127.0.0.1:${target}`, '--stream', name, '--player', 'none', '--output', file, '--no-dashboard', '--duration', '4']);
      assert.equal((await exited(watch, 20_000)).code, 0, watch.stderrText());
      said = watch.stderrText();
    } finally {
      ff.child.kill('SIGKILL');
      impair?.child.kill('SIGKILL');
    }
    await waitFor(() => relay.stderrText().includes(`stream ${name}: publisher rtsp 127.0.0.1`) && relay.stderrText().includes(`stopped, stream ended`), 10_000, 'the relay to end the stream when the publisher hangs up');
    return { file, said };
  }

  /** FFmpeg decodes every frame of `file`; its streams and picture count. */
  function judge(file: string): { video: string; audio?: string } {
    const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    assert.equal(decode.stderr, '', `${file}: every frame decodes`);
    const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,nb_read_frames', '-count_frames', '-of', 'csv=p=0', file], { encoding: 'utf8' });
    const [video, audio] = probe.stdout.trim().split('\n');
    console.log(`# ${file}: ${video} / ${audio}`);
    return { video, audio };
  }

  test('encoded live (H.264 + Opus) over UDP: both tracks reach the recording, 0 decode errors', async () => {
    port = await freePort();
    rtsp = await freeTcpPort();
    relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--rtsp-port', String(rtsp), '--no-dashboard']);
    await waitFor(() => relay.stderrText().includes(`rtsp://127.0.0.1:${rtsp}/STREAM`), 10_000, 'the relay to say its RTSP address');
    const { file } = await publishAndWatch(
      'live',
      ['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
      ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p', '-c:a', 'libopus', '-b:a', '64k'],
      'udp',
    );
    const { video, audio } = judge(file);
    assert.match(video, /^h264,640,\d+$/);
    assert.ok(Number(video.split(',')[2]) >= 3 * 25, `${video}: at least 3 s of 30 fps pictures`);
    assert.match(audio ?? '', /^opus,\d+$/, 'the sound is recorded too');
    assert.ok(Number(audio!.split(',')[1]) >= 3 * 40, `${audio}: at least 3 s of 20 ms sound packets`);
  });

  test('copied from an MP4 (parameter sets only in the SDP) over TCP, watched mid-GOP through 5% loss: repaired, decodes, starts at once', async () => {
    assert.ok(relay, 'the first test started the relay');
    const clip = join(dir, 'clip.mp4');
    const made = spawnSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine=sample_rate=48000', '-t', '12', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-pix_fmt', 'yuv420p', '-c:a', 'libopus', '-y', clip]);
    assert.equal(made.status, 0, String(made.stderr));
    // Joined 2.9 s in: 0.9 s into the clip's second 2 s GOP, so the relay starts watch from its cache.
    const { file, said } = await publishAndWatch('clip', ['-i', clip], ['-c', 'copy'], 'tcp', { joinAfterMs: 2900, loss: '5%' });
    console.log(`# watch: ${said.trim().split('\n').filter((l) => /first frame|lost/.test(l)).join(' / ')}`);
    const first = Number(/first frame (\d+) ms after subscribing/.exec(said)?.[1]);
    assert.ok(first < 1000, `${said}: the first picture within 1 s of joining mid-GOP`);
    const repaired = Number(/(\d+) repaired/.exec(said)?.[1]);
    assert.ok(repaired > 0, `${said}: losses repaired from the relay's history`);
    const { video, audio } = judge(file);
    assert.match(video, /^h264,320,\d+$/);
    assert.ok(Number(video.split(',')[2]) >= 3 * 20, `${video}: at least 3 s of 25 fps pictures`);
    assert.match(audio ?? '', /^opus,\d+$/);
  });

  test('what a publisher may not do: RECORD with no picture, drive another connection\'s session, ANNOUNCE no SDP or no picture', async () => {
    assert.ok(relay, 'the first test started the relay');
    const base = `rtsp://127.0.0.1:${rtsp}/odd`;
    const sdp = FFMPEG_SDP.replace('MPEG4-GENERIC/48000/2', 'opus/48000/2');
    const c = conversation(rtsp);
    const other = conversation(rtsp);
    try {
      assert.match(await c.ask([`ANNOUNCE ${base} RTSP/1.0`, 'CSeq: 1', 'Content-Type: application/sdp', `Content-Length: ${sdp.length}`], sdp), /^RTSP\/1\.0 200/);
      const setup = await c.ask([`SETUP ${base}/streamid=1 RTSP/1.0`, 'CSeq: 2', 'Transport: RTP/AVP/TCP;unicast;interleaved=2-3;mode=record']);
      const session = /\r\nSession: ([0-9a-f]+)/.exec(setup)?.[1];
      assert.ok(session, setup);
      assert.match(await c.ask([`RECORD ${base} RTSP/1.0`, 'CSeq: 3', `Session: ${session}`]), /^RTSP\/1\.0 455/, 'sound alone would hold the name with nothing to show');
      assert.match(await other.ask([`TEARDOWN ${base} RTSP/1.0`, 'CSeq: 1', `Session: ${session}`]), /^RTSP\/1\.0 454/, 'a publisher\'s session from another connection');
      assert.match(await c.ask([`SETUP ${base}/streamid=0 RTSP/1.0`, 'CSeq: 4', `Session: ${session}`, 'Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record']), /^RTSP\/1\.0 200/);
      assert.match(await c.ask([`RECORD ${base} RTSP/1.0`, 'CSeq: 5', `Session: ${session}`]), /^RTSP\/1\.0 200/, 'with the picture set up');
      await waitFor(() => relay.stderrText().includes('stream odd: publisher rtsp'), 5000, 'the stream to be published');
      assert.match(await c.ask([`TEARDOWN ${base} RTSP/1.0`, 'CSeq: 6', `Session: ${session}`]), /^RTSP\/1\.0 200/);
      await waitFor(() => /stream odd: publisher rtsp \S+ stopped, stream ended/.test(relay.stderrText()), 5000, 'TEARDOWN to end the stream');
      assert.match(await other.ask([`ANNOUNCE rtsp://127.0.0.1:${rtsp}/x RTSP/1.0`, 'CSeq: 2', 'Content-Length: 5'], 'hello'), /^RTSP\/1\.0 400/);
      const noPicture = sdp.replace(/m=video[\s\S]*?(?=m=audio)/, '');
      assert.match(await other.ask([`ANNOUNCE rtsp://127.0.0.1:${rtsp}/x RTSP/1.0`, 'CSeq: 3', `Content-Length: ${noPicture.length}`], noPicture), /^RTSP\/1\.0 415/);
    } finally {
      c.close();
      other.close();
    }
  });

  test('relay --key: a wrong or missing password is refused, media only over TCP; a name published already is refused', async () => {
    const keyed = udpcast(['relay', '--host', '127.0.0.1', '--port', String(await freePort()), '--rtsp-port', String(await freeTcpPort()), '--key', KEY, '--no-dashboard']);
    await waitFor(() => /rtsp:\/\/127\.0\.0\.1:\d+\/STREAM/.test(keyed.stderrText()), 10_000, 'the keyed relay to say its RTSP address');
    const rtsp = Number(/rtsp:\/\/127\.0\.0\.1:(\d+)\/STREAM/.exec(keyed.stderrText())![1]);
    const relay = keyed;
    const input = ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=10', '-t', '3', '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'rtsp'];
    const wrong = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', ...input, `rtsp://publisher:wrong@127.0.0.1:${rtsp}/intruder`], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stderr, /401 Unauthorized/);
    const none = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', ...input, `rtsp://127.0.0.1:${rtsp}/intruder`], { encoding: 'utf8', timeout: 20_000 });
    assert.match(none.stderr, /401 Unauthorized/, 'no password at all');
    assert.ok(!relay.stderrText().includes('stream intruder'), 'nothing was published');
    // The right password, media asked for over UDP: refused (its datagrams could come from anyone);
    // left to choose, FFmpeg falls back to TCP and publishes.
    const udp = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', ...input, '-rtsp_transport', 'udp', `rtsp://p:${KEY}@127.0.0.1:${rtsp}/udp`], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(udp.status, 0);
    assert.match(udp.stderr, /461 Unsupported Transport/);
    const either = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', ...input, `rtsp://p:${KEY}@127.0.0.1:${rtsp}/either`], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(either.status, 0, either.stderr);
    await waitFor(() => relay.stderrText().includes('stream either: publisher rtsp'), 5000, 'the fallback to TCP to publish');
    // While one publishes `taken`, a second publisher of the name is refused.
    const first = start('ffmpeg', ['-hide_banner', '-v', 'error', '-re', ...input.slice(0, -2).map((a) => (a === '3' ? '20' : a)), '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'rtsp', `rtsp://p:${KEY}@127.0.0.1:${rtsp}/taken`]);
    try {
      await waitFor(() => relay.stderrText().includes('stream taken: publisher rtsp'), 10_000, 'the first publisher');
      const second = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', ...input, `rtsp://p:${KEY}@127.0.0.1:${rtsp}/taken`], { encoding: 'utf8', timeout: 20_000 });
      assert.notEqual(second.status, 0);
      assert.match(second.stderr, /403 Forbidden/);
      await waitFor(() => /rtsp: refused to publish taken from 127\.0\.0\.1:\d+: the stream is published already/.test(relay.stderrText()), 5000, 'the relay to say why');
    } finally {
      first.child.kill('SIGKILL');
      keyed.child.kill('SIGKILL');
    }
  });
});

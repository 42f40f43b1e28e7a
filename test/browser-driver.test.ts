// The headless-Chromium driver that WebRTC tests will use: pages load, evaluate answers and throws,
// screenshots are PNGs whose brightness real ffmpeg confirms, and the page has WebRTC.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, meanLuma, type Browser } from './helpers/browser.ts';
import { skipUnless } from './helpers/tools.ts';

let browser: Browser | undefined;
after(() => browser?.close());

const page = (colour: string) =>
  'data:text/html,' +
  encodeURIComponent(
    `<body style="margin:0;overflow:hidden;background:#000"><canvas id="c" width="1280" height="720" style="display:block;width:100vw;height:100vh"></canvas><script>
      const g = document.getElementById('c').getContext('2d'); g.fillStyle = '${colour}'; g.fillRect(0, 0, 1280, 720);
    </script></body>`,
  );

test('headless Chromium over CDP: evaluate, exceptions, screenshots judged by ffmpeg, WebRTC', { skip: skipUnless('chromium', 'ffmpeg'), timeout: 60_000 }, async (t) => {
  try {
    const t0 = Date.now();
    browser = await launchChromium();
    t.diagnostic(`chromium (pid ${browser.pid}) answered after ${Date.now() - t0} ms`);

    const bright = await browser.open(page('#ffff40'));
    assert.equal(await bright.evaluate<number>('1+1'), 2);
    assert.equal(await bright.evaluate<string>('Promise.resolve("awaited")'), 'awaited');
    await assert.rejects(bright.evaluate('throw new Error("boom from the page")'), /boom from the page/);

    const shot = await bright.screenshot();
    assert.deepEqual([...shot.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG magic');
    const y = await meanLuma(shot);
    assert.ok(y > 100, `bright page: mean luma ${y}`);

    assert.equal(await bright.evaluate<string>('typeof RTCPeerConnection'), 'function');
    assert.equal(await bright.evaluate<string>('new RTCPeerConnection().signalingState'), 'stable');
    const h264 = await bright.evaluate<string[]>(
      `RTCRtpReceiver.getCapabilities('video').codecs.filter((c) => c.mimeType === 'video/H264').map((c) => c.sdpFmtpLine)`,
    );
    t.diagnostic(`H264 receive capabilities: ${h264.length ? h264.join(' | ') : 'none'}`);
    await bright.close();

    const black = await browser.open(page('#000000'));
    const yBlack = await meanLuma(await black.screenshot());
    assert.ok(yBlack < 20, `black page: mean luma ${yBlack}`);
    await black.close();

    const pid = browser.pid;
    await browser.close();
    await browser.close(); // idempotent
    assert.throws(() => process.kill(pid, 0), 'chromium has exited');
  } catch (e) {
    if (browser) console.log(`# chromium output:\n${browser.stderr()}`);
    throw e;
  }
});

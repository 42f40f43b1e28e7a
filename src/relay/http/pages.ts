/**
 * The relay's two pages, for a person with a browser and nothing else:
 *
 *   /                the live streams (name, size, codec, viewers), each linking to its page
 *   /watch/STREAM    the stream full-window, played over WebRTC (WHEP, POST /whep/STREAM)
 *
 * The watch page asks the browser for the least delay it allows for the sound (jitterBufferTarget
 * 0, Chromium's playoutDelayHint 0) and lets it hold picture and sound in sync (the two tracks are
 * one stream in the relay's answer), the picture from SYNC_START_MS once sound comes; without
 * sound, the picture at the least delay too. It shows its own statistics as text (from
 * getStats), starts again by itself when the connection or the stream goes, and leaves (DELETE of
 * its WHEP resource) when the tab closes. Keys: f full screen, m sound on/off, s statistics, r
 * reconnect. A --watch-key given as ?token= in the page's address goes with every request.
 *
 * Plain HTML and script, no build step and nothing from elsewhere; names of streams reach the
 * page as JSON and the page's text only through textContent.
 */

/** The watch page's picture delay once sound comes, to start near the sound's (see the page's holdForSound). */
export const SYNC_START_MS = 80;

/** JSON inside a <script>: no "</script>" or "<!--" can end it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

function html(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `html,body{margin:0;height:100%;background:#111;color:#ddd;font:14px/1.4 system-ui,sans-serif}
a{color:#8cf}a:focus{outline:2px solid #fc6}table{border-collapse:collapse;margin:1em}td,th{padding:.3em .8em;text-align:left}
video{position:fixed;inset:0;width:100%;height:100%;object-fit:contain;background:#000}
#stats{position:fixed;left:.5em;bottom:.5em;background:#000b;padding:.4em .6em;white-space:pre;font:12px/1.3 monospace}
#note{position:fixed;right:.5em;top:.5em;background:#000b;padding:.3em .6em}`;

/**
 * The --watch-key from the page's address (?token=): the pages themselves need it to load (the
 * server asks it of every request), so it stays in the address; no referrer carries it elsewhere.
 */
const TOKEN_SCRIPT = `const token = new URLSearchParams(location.search).get('token');
const auth = token ? { Authorization: 'Bearer ' + token } : {};`;

export function indexPage(): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>udpcast relay</title>
<meta name="viewport" content="width=device-width"><meta name="referrer" content="no-referrer"><style>${STYLE}</style></head><body>
<main><h1 style="margin:.5em 1em">Live streams</h1><table><thead><tr><th>Stream</th><th>Size</th><th>Codec</th><th>Viewers</th></tr></thead>
<tbody id="list"><tr><td colspan="4">…</td></tr></tbody></table><p style="margin:1em" id="status" role="status"></p></main>
<script>
${TOKEN_SCRIPT}
let shown;
async function refresh() {
  const body = document.getElementById('list');
  try {
    const r = await fetch('/streams.json', { headers: auth, cache: 'no-store' });
    if (!r.ok) throw new Error(r.status + ' ' + (await r.text()));
    const { streams } = await r.json();
    // Rebuilt only when something changed: keyboard focus stays on its link.
    const seen = JSON.stringify(streams.map((s) => [s.name, s.size, s.codec, s.viewers]));
    if (seen === shown) return;
    shown = seen;
    body.replaceChildren(...streams.map((s) => {
      const tr = document.createElement('tr');
      const a = document.createElement('a');
      a.href = '/watch/' + encodeURIComponent(s.name) + (token ? '?token=' + encodeURIComponent(token) : '');
      a.textContent = s.name;
      const cells = [a, s.size ?? '…', s.codec ?? '…', String(s.viewers ?? 0)];
      for (const c of cells) { const td = document.createElement('td'); td.append(c); tr.append(td); }
      return tr;
    }));
    if (!streams.length) body.innerHTML = '<tr><td colspan="4">no live stream: start one with udpcast share --relay HOST</td></tr>';
    document.getElementById('status').textContent = '';
  } catch (e) {
    document.getElementById('status').textContent = 'cannot list the streams: ' + e.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script></body></html>
`;
}

export function watchPage(stream: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${html(stream)}: udpcast</title>
<meta name="viewport" content="width=device-width"><meta name="referrer" content="no-referrer"><style>${STYLE}</style></head><body>
<video id="video" autoplay playsinline muted aria-label="the shared screen"></video>
<div id="note" role="status">connecting…</div>
<div id="stats" aria-live="off"></div>
<script>
const stream = ${scriptJson(stream)};
${TOKEN_SCRIPT}
const video = document.getElementById('video');
const note = document.getElementById('note');
const statsBox = document.getElementById('stats');
let pc, resource, retryMs = 1000, retryTimer, last;
/** The picture's jitter-buffer target when the stream has sound (holdForSound). */
const SYNC_START_MS = ${SYNC_START_MS};
/** When the first picture showed, in ms since the page opened (performance.now()), and the steps before it; for a person and for tests. */
let firstPictureMs;
const steps = {};
if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback((at) => { firstPictureMs = Math.round(at); });

function say(text) { note.textContent = text; note.hidden = !text; }

async function start() {
  clearTimeout(retryTimer);
  stop();
  const conn = new RTCPeerConnection();
  pc = conn;
  conn.addTransceiver('video', { direction: 'recvonly' });
  conn.addTransceiver('audio', { direction: 'recvonly' });
  const media = new MediaStream();
  conn.ontrack = (e) => {
    // The sound: the least delay the browser allows, no target for its jitter buffer. The picture
    // keeps its default timing (a playout delay of 0 has Chromium show each picture at once, and
    // its lip sync, which can then only hold the sound back, put it 19-221 ms after its picture,
    // bench lipsync, one run) until sound comes (holdForSound).
    if (e.track.kind === 'audio') {
      if ('jitterBufferTarget' in e.receiver) e.receiver.jitterBufferTarget = 0;
      e.receiver.playoutDelayHint = 0;
      holdForSound(conn, e.receiver);
    }
    media.addTrack(e.track);
    video.srcObject = media;
  };
  conn.onconnectionstatechange = () => {
    if (conn !== pc) return;
    if (conn.connectionState === 'connected') { steps.connected ??= Math.round(performance.now()); say(video.muted ? 'm: sound on' : ''); retryMs = 1000; }
    if (['failed', 'closed', 'disconnected'].includes(conn.connectionState)) again('connection ' + conn.connectionState);
  };
  try {
    await conn.setLocalDescription(await conn.createOffer());
    await gathered(conn);
    if (conn !== pc) return; // replaced meanwhile (r pressed, or a retry)
    steps.offered ??= Math.round(performance.now());
    const r = await fetch('/whep/' + encodeURIComponent(stream), { method: 'POST', headers: { 'Content-Type': 'application/sdp', ...auth }, body: conn.localDescription.sdp });
    if (r.status !== 201) throw new Error((await r.text()).trim() || 'HTTP ' + r.status);
    const mine = new URL(r.headers.get('Location'), location.href).href;
    if (conn !== pc) return leave(mine);
    resource = mine;
    steps.answered ??= Math.round(performance.now());
    await conn.setRemoteDescription({ type: 'answer', sdp: await r.text() });
  } catch (e) {
    if (conn === pc) again(e.message);
  }
}

/**
 * Once the sound's first packet comes (the answer has a sound track for a stream without sound
 * too), the picture's jitter-buffer target goes to SYNC_START_MS. The sound's jitter buffer held it
 * 80-150 ms in the first seconds and the picture 10-20 ms, and Chromium's lip sync closes such a
 * gap by adding picture delay ~20 ms every two seconds (libwebrtc's stream_synchronization.cc: a
 * 4-report filter, no move under 30 ms, half the gap a move): the first 10 s of sound came up to
 * 148 ms after its picture. From SYNC_START_MS lip sync moves both as it would. Without sound the
 * picture keeps the least delay.
 */
function holdForSound(conn, sound) {
  const picture = conn.getReceivers().find((r) => r.track.kind === 'video');
  if (!picture || !('jitterBufferTarget' in picture)) return;
  const hold = () => { if (conn === pc) picture.jitterBufferTarget = SYNC_START_MS; };
  // A remote track is muted until its first packet comes (webrtc-pc, "unmute").
  if (!sound.track.muted) hold();
  else sound.track.addEventListener('unmute', hold, { once: true });
}

function leave(url) {
  fetch(url, { method: 'DELETE', headers: auth, keepalive: true }).catch(() => {});
}

/** No trickle: the offer goes with the candidates found in a second. */
function gathered(conn) {
  if (conn.iceGatheringState === 'complete') return;
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 1000);
    conn.addEventListener('icegatheringstatechange', () => { if (conn.iceGatheringState === 'complete') { clearTimeout(t); resolve(); } });
  });
}

function stop() {
  if (resource) leave(resource);
  resource = undefined;
  if (pc) { const old = pc; pc = undefined; old.close(); }
}

function again(why) {
  stop();
  say(why + ': again in ' + Math.round(retryMs / 1000) + ' s');
  clearTimeout(retryTimer);
  retryTimer = setTimeout(start, retryMs);
  retryMs = Math.min(retryMs * 2, 10000);
}

async function showStats() {
  if (!pc || statsBox.hidden) return;
  const report = await pc.getStats();
  let v, pair;
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') v = s;
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
  });
  if (!v) return;
  const now = { t: v.timestamp, bytes: v.bytesReceived };
  const kbps = last ? Math.round(((now.bytes - last.bytes) * 8) / (now.t - last.t)) : 0;
  last = now;
  const lostPct = v.packetsReceived ? (100 * v.packetsLost) / (v.packetsReceived + v.packetsLost) : 0;
  const q = video.getVideoPlaybackQuality();
  statsBox.textContent = [
    stream + '  ' + (v.frameWidth || '?') + 'x' + (v.frameHeight || '?') + ' (the layer the relay sends)',
    'bitrate ' + kbps + ' kbit/s   fps ' + (v.framesPerSecond ?? 0),
    'loss ' + lostPct.toFixed(1) + '% (' + v.packetsLost + ' packets, ' + (v.nackCount ?? 0) + ' NACKs)',
    'rtt ' + (pair && pair.currentRoundTripTime !== undefined ? Math.round(pair.currentRoundTripTime * 1000) + ' ms' : '?') +
      '   jitter ' + Math.round((v.jitter ?? 0) * 1000) + ' ms   buffer ' + (v.jitterBufferEmittedCount ? Math.round((1000 * v.jitterBufferDelay) / v.jitterBufferEmittedCount) : 0) + ' ms',
    'frames ' + (v.framesDecoded ?? 0) + ' decoded, ' + q.droppedVideoFrames + ' dropped',
    'first picture ' + (firstPictureMs ?? '?') + ' ms after the page opened (offer ' + (steps.offered ?? '?') + ', answer ' + (steps.answered ?? '?') + ', connected ' + (steps.connected ?? '?') + ')',
    'keys: f full screen, m sound, s statistics, r reconnect',
  ].join('\\n');
}

document.addEventListener('keydown', (e) => {
  if (e.repeat || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === 'f') document.fullscreenElement ? document.exitFullscreen() : document.documentElement.requestFullscreen().catch(() => {});
  else if (e.key === 'm') { video.muted = !video.muted; say(video.muted ? 'm: sound on' : ''); }
  else if (e.key === 's') statsBox.hidden = !statsBox.hidden;
  else if (e.key === 'r') { retryMs = 1000; start(); }
});
addEventListener('pagehide', stop);
setInterval(showStats, 1000);
start();
</script></body></html>
`;
}

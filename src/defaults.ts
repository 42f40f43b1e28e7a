/**
 * Every default and every limit udpcast has, in one place. Each cap says what happens past it.
 */

// ---- Datagram size: the MTU arithmetic -------------------------------------------------------
// A datagram must cross the path unfragmented: a lost fragment loses the whole datagram, and many
// firewalls drop fragments outright. Ethernet's MTU is 1500 bytes, but tunnels (VPN, PPPoE, Wi-Fi
// bridges) take some of it, so like WebRTC and QUIC (RFC 9000 §14: every path must carry 1200-byte
// UDP payloads) we budget 1200 bytes of UDP payload per datagram:
//   1200 UDP payload
//   - 12 RTP fixed header (RFC 3550 §5.1)
//   - 12 room for a header extension (RFC 8285 one-byte form: 4-byte header + 8 bytes of elements)
//   - 16 room for an authentication tag (AES-GCM tag, or HMAC-SHA-256 truncated to 16 bytes)
//   = 1160 bytes of RTP payload.
// On top of that the IP and UDP headers (20 + 8 for IPv4, 40 + 8 for IPv6) give 1228 / 1248 bytes
// on the wire, well under 1500 and under the 1280 every IPv6 link must carry (RFC 8200 §5).
export const UDP_PAYLOAD_BUDGET = 1200;
export const RTP_HEADER_ROOM = 12 + 12;
export const AUTH_TAG_ROOM = 16;
export const DEFAULT_PAYLOAD_LIMIT = UDP_PAYLOAD_BUDGET - RTP_HEADER_ROOM - AUTH_TAG_ROOM; // 1160
/** Smallest payload limit we accept: an FU-A needs 2 header bytes plus at least 1 byte of NAL. */
export const MIN_PAYLOAD_LIMIT = 64;
/** Largest datagram we read or forward; anything longer is counted and dropped. */
export const MAX_DATAGRAM = 1500;

// ---- Reassembly caps (per stream) ------------------------------------------------------------
/** Bytes in one reassembled frame (access unit or JPEG). A bigger frame is dropped and counted. */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024;
/** NAL units in one H.264 access unit. More are dropped with the access unit. */
export const MAX_NALUS_PER_AU = 1024;

// ---- Payload types and clocks ------------------------------------------------------------------
/** Dynamic payload type for H.264 (RFC 3551 §6 leaves 96-127 to signalling). */
export const PT_H264 = 96;
/** Static payload type for JPEG (RFC 3551 §6, table 5). */
export const PT_JPEG = 26;
/** Dynamic payload type for Opus (RFC 7587), the number browsers offer it under. */
export const PT_OPUS = 111;
/** Dynamic payload type for redundant Opus (RFC 2198 RED), the number browsers offer red/48000/2 under. */
export const PT_RED = 63;
/** Whether a payload type is the sharer's sound (plain Opus or RED around it). */
export function isAudioPayloadType(pt: number): boolean {
  return pt === PT_OPUS || pt === PT_RED;
}
/** Video RTP clock rate (RFC 6184 §8.2.1, RFC 2435 §3.1.3). */
export const VIDEO_CLOCK_RATE = 90000;

/**
 * The longest hole in the sound the viewer marks for its decoder to conceal (player/audio.ts):
 * beyond it the sound stopped (a paused sharer, an outage) rather than lost a few packets, and
 * it resumes at its own time instead of after seconds of made-up sound.
 */
export const AUDIO_CONCEAL_MAX_MS = 200;
/**
 * The longest silence not sent (DTX) the viewer fills: a sharer's DTX sends a packet every 400 ms
 * in silence (codecs/opus/dtx.ts), so every DTX hole fits, with one keepalive lost too; a longer
 * one is a pause (the sharer stopped), left as a hole.
 */
export const AUDIO_SILENCE_FILL_MS = 1000;
/**
 * After digital silence, how late the next sound packet may be before the viewer fills its time
 * with silence (player/audio.ts): more than a packet's usual jitter, so sound that is only late
 * seldom comes into a fill, and about one of ffplay's sound buffers (33 ms, player/ffplay.ts), the
 * wait its device has at the start of each hole.
 */
export const AUDIO_FILL_LAG_MS = 40;
/**
 * Sound that came for a time the viewer had filled with silence is handed on after the fill, and
 * the sound after it as much later, by at most this (player/audio.ts); the next silence takes it
 * back. Kept small beside lip sync's window (ITU-R BT.1359: sound up to 125 ms late unnoticed).
 */
export const AUDIO_SHIFT_MAX_MS = 40;
/**
 * Sound per Opus packet, in ms (`share --audio-frame`): 20 is RFC 7587's usual packet and lets
 * the encoder use SILK for speech; 10 halves the wait for a packet's samples and codes CELT only
 * (FFmpeg's `-application lowdelay`). 10 by default: in all six paired rounds of three lipsync
 * benchmark runs, 10 ms packets reached the ear sooner, by 2 to 24 ms at the median
 * (BENCHMARKS.md: 40 against 45 ms), for twice the packets; RED repairs loss either way.
 */
export const AUDIO_FRAME_CHOICES = [10, 20] as const;
export type AudioFrameMs = (typeof AUDIO_FRAME_CHOICES)[number];
export const AUDIO_FRAME_MS_DEFAULT: AudioFrameMs = 10;
/** Earlier Opus packets each sound packet repeats by default (RFC 2198 RED, `share --audio-red`). */
export const AUDIO_RED_DEFAULT = 2;
/** The most `--audio-red` takes: three copies already quadruple the sound's bitrate. */
export const AUDIO_RED_MAX = 3;

// ---- RTCP ---------------------------------------------------------------------------------
/** Sender and receiver report interval. RFC 3550 §6.2 allows a shorter one than 5 s for small sessions. */
export const RTCP_INTERVAL_MS = 1000;
/** RFC 3550 A.1: packets in sequence needed before a new source is valid. */
export const MIN_SEQUENTIAL = 2;
/** RFC 3550 A.1: jumps larger than this are treated as a restart. */
export const MAX_DROPOUT = 3000;
/** RFC 3550 A.1: packets this far behind are misordered, beyond it a restart. */
export const MAX_MISORDER = 100;

// ---- Network defaults ------------------------------------------------------------------------
export const DEFAULT_PORT = 5004;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_STREAM = 'main';

// ---- Relay and session timing ----------------------------------------------------------------
/** How often a viewer re-sends its subscription and a publisher its announcement. */
export const KEEPALIVE_MS = 1000;
/** A viewer silent this long is dropped by the relay. */
export const VIEWER_TIMEOUT_MS = 10_000;
/** A publisher silent this long ends its stream; viewers are told. */
export const PUBLISHER_TIMEOUT_MS = 5000;
/**
 * A sharer or viewer that has never heard from its relay gives up after this long with a clear
 * message (wrong address, relay not running, UDP blocked). Once connected, both retry forever.
 */
export const CONNECT_TIMEOUT_MS = 5000;
/** A viewer that has heard nothing from the relay this long says "reconnecting". */
export const VIEWER_STALL_MS = 2000;
/**
 * A sharer whose relay has answered none of its PUBLISHes (one a KEEPALIVE_MS) this long says
 * "relay not answering": three answers missed in a row, not one lost datagram.
 */
export const RELAY_SILENT_MS = 3000;
/** A viewer whose stream has no sharer says so at once, then again this often while it waits. */
export const WAITING_NOTICE_MS = 10_000;
/** Streams one relay carries; a publish past it is counted and ignored. */
export const MAX_STREAMS = 64;
/** Viewers of one stream; a subscription past it is counted and refused. */
export const MAX_VIEWERS_PER_STREAM = 1000;
/** Viewers across all streams of one relay. */
export const MAX_VIEWERS = 4000;
/** Longest stream name (bytes of UTF-8); names are letters, digits, '-', '_', '.'. */
export const MAX_STREAM_NAME = 64;

// ---- Share defaults ---------------------------------------------------------------------------
export const DEFAULT_FPS = 30;
export const DEFAULT_BITRATE_KBPS = 2500;
/** Keyframe interval in frames: 2 s at 30 fps, so a lost reference heals within 2 s at worst. */
export const DEFAULT_GOP = 60;
/** MJPEG quality (FFmpeg -q:v, 2 best - 31 worst). */
export const DEFAULT_MJPEG_QUALITY = 5;
export const DEFAULT_TEST_SIZE = { width: 1280, height: 720 };
/**
 * MJPEG with --bitrate: the rate is judged over windows of this many seconds of pictures, and a
 * window above the rate by this factor (the lowest quality cannot go lower) is said once.
 */
export const MJPEG_RATE_WINDOW_S = 3;
export const MJPEG_RATE_OVERSHOOT = 1.25;
/** Asking FFmpeg an input's picture size (a whole screen, a file) before sharing: past this, share without knowing it. */
export const PROBE_TIMEOUT_MS = 5000;
/** Addresses of this machine named in the "viewers run: udpcast watch …" hint; past it, "…". */
export const WATCH_HINT_MAX_ADDRESSES = 4;
/** Interval of --stats-json lines and of the plain-text summary when there is no dashboard. */
export const STATS_INTERVAL_MS = 1000;
export const SUMMARY_INTERVAL_MS = 5000;

// ---- Loss repair (NACK/RTX), late join -------------------------------------------------------
/** Media packets each stream keeps for retransmission: ~2.5 MB, about 3 s at 5 Mbit/s. */
export const RTX_HISTORY_PACKETS = 2048;
/** Retransmissions one viewer may ask for per second; beyond it NACKs are counted and ignored. */
export const RTX_MAX_PER_SECOND = 1000;
/**
 * Retransmissions to one viewer are also at most this share of the datagrams the stream sends it
 * (with RTX_BURST in hand for a burst loss): a viewer whose link is full gets fewer
 * retransmissions, not more, and never more than 1.25x the stream in all (RFC 8085 §3.1).
 */
export const RTX_SHARE = 0.25;
/** Retransmissions a viewer may have in hand: a lost 720p keyframe is about 100 datagrams. */
export const RTX_BURST = 128;
/**
 * Uplink repair: a packet missing from the sharer's numbering is asked for again (NACK to the
 * sharer) at once, then again when the sharer's answer is overdue (a little over its measured
 * answer time, at least UPLINK_NACK_RETRY_MIN_MS; UPLINK_NACK_RETRY_MS before one is measured),
 * at most UPLINK_NACK_TRIES times; after UPLINK_REPAIR_MAX_MS it is given up: its frame is long
 * broken for a live viewer by then.
 */
export const UPLINK_NACK_RETRY_MS = 100;
export const UPLINK_NACK_RETRY_MIN_MS = 10;
export const UPLINK_NACK_TRIES = 4;
export const UPLINK_REPAIR_MAX_MS = 500;
/** Sequence numbers missing at once per source the relay tracks; a longer run is not asked for. */
export const UPLINK_MISSING_MAX = 256;
/** Media packets the sharer keeps per source to send again: about 1.5 s of the top layer at 5 Mbit/s. */
export const UPLINK_HISTORY_PACKETS = 1024;
/**
 * After the relay forwards a keyframe request (PLI) to the sharer, further requests for the
 * stream wait for that keyframe this long: one encoder restart answers every viewer who asked
 * meanwhile (the restart delivers its IDR in ~0.2 s).
 */
export const KEYFRAME_WAIT_MS = 1000;

/**
 * The relay's RFC 8888 feedback to its sharer (transport/arrivals.ts): sent at the end of a frame
 * (RTP marker) at most every FEEDBACK_MIN_MS, and at least every FEEDBACK_MAX_MS while media
 * arrives. 20 reports a second of ~40-byte packets: about 10 kbit/s, 1% of a 1 Mbit/s stream.
 */
export const FEEDBACK_MIN_MS = 50;
/** A quality layer's rate is measured over this long at the relay (its viewers' layer choice). */
export const LANE_RATE_MS = 1000;
/** A layer with no media for this long has stopped (the sharer paused it): its viewers move. */
export const LANE_SILENT_MS = 1000;
/**
 * A layer whose latest picture is this much older (by capture time: RTP timestamps, which the
 * layers share) than a keyframe starting on a layer below it was paused by the sharer: the layers
 * come from one encoder, picture by picture, so a running one would have this picture too. Its
 * viewers move to that keyframe at once. Three frame times at 30 fps; a new encoder run (a
 * re-target, a keyframe request) takes longer than that to start, so its first keyframe is later.
 */
export const LANE_PAUSED_MS = 100;
export const FEEDBACK_MAX_MS = 100;
/** One viewer's keyframe requests reach the sharer at most this often: its trouble is not everyone's bitrate. */
export const VIEWER_KEYFRAME_MIN_MS = 2000;
/** RFC 8083 §4: a circuit breaker trips after this many reports in a row say so (its CB_INTERVAL, at least 3). */
export const CB_INTERVALS = 3;
/** RFC 8083 §4.3: media stops when it runs at more than this many times a TCP-friendly rate. */
export const CB_RATE_FACTOR = 10;
/** After a circuit breaker stopped media to a viewer, it is tried again after this long (RFC 8083 §4.5 leaves it to us). */
export const CB_RESUME_MS = 10_000;
/** Bytes of the keyframe cache (everything since the last keyframe) per stream; past it, no cache until the next keyframe. */
export const KEYFRAME_CACHE_BYTES = 8 * 1024 * 1024;
/** A joining viewer's catch-up (the keyframe cache) is paced at 20 Mbit/s, after a 16 KB burst. */
export const JOIN_PACE_BYTES_PER_MS = 2500;
export const JOIN_BURST_BYTES = 16 * 1024;
/** Packets queued for a viewer still catching up; past it, the viewer goes live at once. */
export const CATCHUP_MAX_PACKETS = 8192;
/** Viewer latency budget when none is given: 3 RTTs + 20 ms, within these bounds (ms). */
export const LATENCY_BUDGET_MIN_MS = 40;
export const LATENCY_BUDGET_MAX_MS = 500;
/**
 * The most a budget is stretched for repairs slower than the round trip (a loss on the sharer's
 * way, repaired from there): a call's delay. Through a congested uplink those repairs wait in its
 * queue, and a budget that followed them held every frame behind a gap that long (CI: p50 529 ms
 * behind a 1.2 Mbit/s uplink with the 500 ms cap).
 */
export const LATENCY_BUDGET_REPAIR_MAX_MS = 150;
/** Budget before the first RTT measurement. */
export const LATENCY_BUDGET_INITIAL_MS = 120;
/** Packets a viewer holds waiting for a gap to fill; past it, the oldest gap is given up. */
export const JITTER_MAX_PACKETS = 4096;

// ---- The player window and recordings (src/player) ------------------------------------------
// Measured on 2 cores, 720p30 (BENCHMARKS.md, glass to glass): live frames reach the player
// 5-60 ms after capture plus the repair budget; ffplay prints its status line every 30 ms
// (ffplay.c, video_refresh) while it refreshes its window.
/**
 * A frame later than the repair budget by more than this (capture → hand-over) is stale: decoded,
 * not shown. Live frames take capture + encode + network, tens of ms.
 */
export const STALE_SLACK_MS = 150;
/**
 * When every frame of this long a window looked stale, the sharer's and viewer's clocks disagree
 * (latency is read against the sharer's clock): staleness is then judged against the best
 * latency of the window instead. Longer than any catch-up (8 MB at 20 Mbit/s: 3.4 s).
 */
export const CLOCK_SKEW_WINDOW_MS = 5000;
/** RTP time and arrival time this far apart: a new sharer session, and recordings follow arrival. */
export const RTP_TRUST_MS = 5000;
/** No status line from the player, or writes left unread, this long: it has stopped keeping up. */
export const PLAYER_STALL_MS = 300;
/** The player's clock this far behind ours (against its best): it shows frames late. */
export const PLAYER_LAG_MS = 250;
/** Until its first status line a player may take this long to read what it was given (opening a window). */
export const PLAYER_STARTUP_GRACE_MS = 3000;
/**
 * Within PLAYER_STARTUP_GRACE_MS of its start, a player is stalled only after this long without a
 * sign of life: opening its sound device (PulseAudio) holds ffplay's loop for a few hundred ms
 * after its first pictures (seen: 329 and 387 ms, each taken for a stall and answered with a
 * restart, whose new player met the same wait).
 */
export const PLAYER_STARTUP_STALL_MS = 1000;
/** Restarts of a fallen-behind player at most this often. */
export const PLAYER_RESTART_MIN_MS = 2000;
/** How often watch checks its player (and whether watch's own event loop was held up). */
export const PLAYER_CHECK_MS = 50;
/**
 * How much earlier than its decoding every picture after a player's first is stamped. ffplay shows
 * a picture at its frame timer and corrects a picture late against its clock only beyond its sync
 * threshold (fftools/ffplay.c AV_SYNC_THRESHOLD_MIN, 40 ms at 25 fps and more), so a player whose
 * frame timer locked onto a late phase at start (a join's catch-up, a window opening) stayed up to
 * 40 ms behind for the whole session. Stamped this much early, a picture more than 10 ms later
 * than the first is shown at once; nearer, ffplay keeps its own exact timing. Measured at the glass
 * (bench glass, 8 joins twice): joins p95 about 61 ms instead of 78-85 ms, steady p50 43-46 ms.
 */
export const PLAYER_CLOCK_LEAD_MS = 30;
/** The last keyframe and the frames after it, kept to restart a player from; past it, the next keyframe. */
export const PLAYER_GOP_CACHE_BYTES = 8 * 1024 * 1024;
/** Bytes a recording or --output - may have waiting to be written; past it, frames wait for the next keyframe. */
export const OUTPUT_BUFFER_MAX_BYTES = 32 * 1024 * 1024;
/** MP4 recordings: a fragment at every keyframe and at least this often (what a SIGKILL can lose). */
export const MP4_FRAGMENT_MS = 500;

/** `relay --rtsp-port`: RTSP's registered port is 554; 8554 is what unprivileged servers use (MediaMTX, GStreamer's examples). 0: no RTSP. */
export const RTSP_PORT_DEFAULT = 8554;
/** RTSP sessions at once (each is a viewer; MAX_VIEWERS still caps them all). */
export const RTSP_MAX_SESSIONS = 200;
/** RTSP connections at once: a connection holds a socket and a read buffer even before a session. */
export const RTSP_MAX_CONNECTIONS = 1000;
/** Of those, from one address, and sessions from one address: one host cannot take every place. */
export const RTSP_MAX_CONNECTIONS_PER_ADDRESS = 100;
export const RTSP_MAX_SESSIONS_PER_ADDRESS = 50;
/** A session set up and not played within this long ends (a player PLAYs right after its SETUPs). */
export const RTSP_PLAY_WAIT_MS = 10_000;
/** A request's head, and its body, at most this long; and at most this many header lines. */
export const RTSP_MAX_REQUEST_BYTES = 8192;
export const RTSP_MAX_HEADERS = 32;
/** An RTSP session not heard from (a request, its RTCP, interleaved data) for this long ends (RFC 2326 §12.37's default). */
export const RTSP_SESSION_TIMEOUT_S = 60;
/** A connection that has not completed a request this long after its last one (or its start) is closed: slowloris. */
export const RTSP_IDLE_REQUEST_MS = 10_000;
/** Interleaved data queued on one TCP connection beyond this is dropped (a slow reader), counted. */
export const RTSP_TCP_QUEUE_BYTES = 1024 * 1024;
/** `--push`: an RTSP server's answer (head and body) at most this long, with at most this many header lines. */
export const RTSP_PUSH_MAX_RESPONSE_BYTES = 64 * 1024;
export const RTSP_PUSH_MAX_HEADERS = 64;
/** `--push`: a TCP connect, and each answer to a request, within this long, else the connection has failed. */
export const RTSP_PUSH_ANSWER_MS = 10_000;
/** `--push`: after a failure, the first retry this soon, doubling each time up to RTSP_PUSH_RETRY_MAX_MS. */
export const RTSP_PUSH_RETRY_MIN_MS = 1000;
/** ...and the slowest; also the retry after a refusal a person must fix (a wrong password, ANNOUNCE refused). */
export const RTSP_PUSH_RETRY_MAX_MS = 30_000;
/** `--push`: a request (OPTIONS) at least this often keeps the session (or half the server's Session timeout, if shorter). */
export const RTSP_PUSH_KEEPALIVE_MS = 20_000;
/** `--push`: bytes queued on the connection beyond this are dropped and counted (as RTSP_TCP_QUEUE_BYTES for a player). */
export const RTSP_PUSH_QUEUE_BYTES = 1024 * 1024;

/** `relay --http`: the relay's HTTP server (/streams.json, /metrics); 0: none. */
export const HTTP_PORT_DEFAULT = 8080;
/** Open HTTP connections at most; more are refused by the kernel's accept queue, then dropped. */
export const HTTP_MAX_CONNECTIONS = 1000;
/** A request's head (request line and headers) at most; more is 431. */
export const HTTP_MAX_HEADER_BYTES = 8192;
/** Time to send a request's head, and the whole request (slowloris). */
export const HTTP_HEADERS_TIMEOUT_MS = 10_000;
export const HTTP_REQUEST_TIMEOUT_MS = 10_000;
/** An idle kept-alive connection is closed after this. */
export const HTTP_KEEPALIVE_TIMEOUT_MS = 5000;
/** HTTP request bodies (a WHEP offer's SDP; Chromium's is about 5 KB) at most; more is 413. */
export const HTTP_MAX_BODY_BYTES = 64 * 1024;

/** Browser (WebRTC, WHEP) viewers at most, in all and from one address; more are refused 503. */
export const WEBRTC_MAX_SESSIONS = 200;
export const WEBRTC_MAX_SESSIONS_PER_ADDRESS = 20;
/** A browser that has not completed ICE and DTLS this long after its offer is dropped and counted. */
export const WEBRTC_CONNECT_MS = 10_000;
/**
 * A connected browser that sends no RTCP this long is gone (a closed tab, a lost network): Chromium
 * sends a receiver report about every second for a picture (RFC 3550 §6.2 with a 5% share).
 */
export const WEBRTC_SILENT_MS = 5000;
/** The offer's ICE candidates are gathered within this, or the answer carries those found so far. */
export const WEBRTC_GATHER_MS = 2000;

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
/** Video RTP clock rate (RFC 6184 §8.2.1, RFC 2435 §3.1.3). */
export const VIDEO_CLOCK_RATE = 90000;

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
/** Interval of --stats-json lines and of the plain-text summary when there is no dashboard. */
export const STATS_INTERVAL_MS = 1000;
export const SUMMARY_INTERVAL_MS = 5000;

// ---- Loss repair (NACK/RTX), late join -------------------------------------------------------
/** Media packets each stream keeps for retransmission: ~2.5 MB, about 3 s at 5 Mbit/s. */
export const RTX_HISTORY_PACKETS = 2048;
/** Retransmissions one viewer may ask for per second; beyond it NACKs are counted and ignored. */
export const RTX_MAX_PER_SECOND = 1000;
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
/** Budget before the first RTT measurement. */
export const LATENCY_BUDGET_INITIAL_MS = 120;
/** Packets a viewer holds waiting for a gap to fill; past it, the oldest gap is given up. */
export const JITTER_MAX_PACKETS = 4096;

/*
 * udpcast's one native helper: the relay's fan-out in one system call per batch.
 *
 * The relay sends the same datagram to every viewer. Through node:dgram that is one JS call, one
 * libuv try-send and one sendmsg(2) per viewer; here it is one sendmmsg(2) (Linux >= 3.0) carrying
 * up to UIO_MAXIOV messages that all point at the same bytes and differ only in msg_name.
 *
 * It is optional: src/relay/fanout-send.ts loads it when it was built (native/build.mjs) and
 * falls back to dgram otherwise. It never queues: a datagram the kernel will not take now
 * (EAGAIN, ENOBUFS) is reported back, and the caller hands the rest to dgram, which does queue.
 *
 * Exports:
 *   packAddress(ip: string, port: number): Buffer       a sockaddr_in or sockaddr_in6
 *   sendToMany(fd: number, data: Buffer | Buffer[], addresses: Buffer[], start: number): number
 *       sends data to addresses[start..]; returns how many were sent (> 0), or -errno when the
 *       first of them failed. Never throws for a send error; throws TypeError for bad arguments.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <node_api.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* One batch: the kernel takes at most UIO_MAXIOV (1024) messages per sendmmsg call. */
#define BATCH 1024
/* Header + payload as separate pieces (the packetizer's Buffer[] layout) is at most this many. */
#define MAX_PIECES 8

#define CHECK(env, call)                                                      \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error((env), NULL, "sendmmsg addon: N-API call failed: " #call); \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value pack_address(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2) return throw_type(env, "packAddress(ip, port): two arguments");
  char ip[INET6_ADDRSTRLEN + 1];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], ip, sizeof ip, &len) != napi_ok)
    return throw_type(env, "packAddress: ip must be a string");
  uint32_t port = 0;
  if (napi_get_value_uint32(env, argv[1], &port) != napi_ok || port > 65535)
    return throw_type(env, "packAddress: port must be 0-65535");

  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  const void *sa;
  size_t salen;
  memset(&v4, 0, sizeof v4);
  memset(&v6, 0, sizeof v6);
  if (inet_pton(AF_INET, ip, &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons((uint16_t)port);
    sa = &v4;
    salen = sizeof v4;
  } else if (inet_pton(AF_INET6, ip, &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons((uint16_t)port);
    sa = &v6;
    salen = sizeof v6;
  } else {
    return throw_type(env, "packAddress: not an IPv4 or IPv6 address");
  }
  napi_value out;
  CHECK(env, napi_create_buffer_copy(env, salen, sa, NULL, &out));
  return out;
}

static napi_value send_to_many(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) return throw_type(env, "sendToMany(fd, data, addresses, start): four arguments");

  int32_t fd = -1;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "sendToMany: fd must be a non-negative integer");
  int type = 0;
  socklen_t type_len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_DGRAM)
    return throw_type(env, "sendToMany: fd is not a datagram socket");

  /* data: one Buffer, or an array of up to MAX_PIECES Buffers sent as one datagram. */
  struct iovec iov[MAX_PIECES];
  size_t pieces = 0;
  bool is_array = false;
  CHECK(env, napi_is_array(env, argv[1], &is_array));
  if (is_array) {
    uint32_t n = 0;
    CHECK(env, napi_get_array_length(env, argv[1], &n));
    if (n == 0 || n > MAX_PIECES) return throw_type(env, "sendToMany: data must have 1-8 pieces");
    for (uint32_t i = 0; i < n; i++) {
      napi_value piece;
      CHECK(env, napi_get_element(env, argv[1], i, &piece));
      if (napi_get_buffer_info(env, piece, &iov[i].iov_base, &iov[i].iov_len) != napi_ok)
        return throw_type(env, "sendToMany: each piece of data must be a Buffer");
    }
    pieces = n;
  } else {
    if (napi_get_buffer_info(env, argv[1], &iov[0].iov_base, &iov[0].iov_len) != napi_ok)
      return throw_type(env, "sendToMany: data must be a Buffer or an array of Buffers");
    pieces = 1;
  }

  uint32_t count = 0;
  CHECK(env, napi_get_array_length(env, argv[2], &count));
  uint32_t start = 0;
  if (napi_get_value_uint32(env, argv[3], &start) != napi_ok || start > count)
    return throw_type(env, "sendToMany: start must be 0..addresses.length");

  struct mmsghdr msgs[BATCH]; /* 64 KiB of stack: no shared state, so worker threads may call it */
  int32_t sent = 0;
  uint32_t next = start;
  while (next < count) {
    uint32_t batch = count - next < BATCH ? count - next : BATCH;
    for (uint32_t i = 0; i < batch; i++) {
      napi_value addr;
      void *sa;
      size_t salen;
      CHECK(env, napi_get_element(env, argv[2], next + i, &addr));
      if (napi_get_buffer_info(env, addr, &sa, &salen) != napi_ok ||
          (salen != sizeof(struct sockaddr_in) && salen != sizeof(struct sockaddr_in6)))
        return throw_type(env, "sendToMany: each address must come from packAddress");
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_name = sa;
      msgs[i].msg_hdr.msg_namelen = (socklen_t)salen;
      msgs[i].msg_hdr.msg_iov = iov;
      msgs[i].msg_hdr.msg_iovlen = pieces;
    }
    int r;
    do {
      r = sendmmsg(fd, msgs, batch, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      /* The first message of this batch failed; report it unless earlier ones went. */
      if (sent == 0) sent = -errno;
      break;
    }
    sent += r;
    next += (uint32_t)r;
    if ((uint32_t)r < batch) break; /* the next one would fail: the caller's next call says why */
  }
  napi_value out;
  CHECK(env, napi_create_int32(env, sent, &out));
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK(env, napi_create_function(env, "packAddress", NAPI_AUTO_LENGTH, pack_address, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "packAddress", fn));
  CHECK(env, napi_create_function(env, "sendToMany", NAPI_AUTO_LENGTH, send_to_many, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "sendToMany", fn));
  return exports;
}

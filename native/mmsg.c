/*
 * udpcast's one native helper: the relay's datagrams in and out, a batch per system call.
 *
 * Out: the relay sends the same datagram to every viewer. Through node:dgram that is one JS call,
 * one libuv try-send and one sendmsg(2) per viewer; here it is one sendmmsg(2) (Linux >= 3.0)
 * carrying up to UIO_MAXIOV messages that all point at the same bytes and differ only in msg_name.
 *
 * In: node:dgram makes one recvmsg(2), one 64 KiB allocation and one JS call per datagram; the
 * receiver here takes up to RECV_BATCH datagrams per recvmmsg(2) and hands them to JS in one call.
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
 *   sendEach(fd: number, datagrams: Array<Buffer | Buffer[]>, address: Buffer, start: number): number
 *       sends datagrams[start..] (each one Buffer, or up to 8 pieces gathered) to one address, in
 *       order, a sendmmsg(2) per up to SEND_EACH_BATCH of them: a browser's packets, each encrypted
 *       for it alone. Returns as sendToMany does.
 *   startReceiving(fd: number, slotBytes: number,
 *                  onBatch: (data: Buffer, ends: number[], addresses: string[], ports: number[]) => void,
 *                  onError: (errno: number, stopped: boolean) => void): object
 *       reads the socket on this thread's event loop through a dup(2) of fd (so node's own handle
 *       keeps its epoll registration for sends). Datagram i of a batch is data[ends[i-1] .. ends[i]),
 *       from addresses[i]:ports[i]. A datagram longer than slotBytes arrives cut to
 *       slotBytes + 1 bytes, so the caller's size check still sees it as too long. The caller stops
 *       node's own reading (handle.recvStop()) and starts it again if onError says `stopped`.
 *   stopReceiving(receiver): void   idempotent; call it before closing the socket.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <string.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

/* One batch: the kernel takes at most UIO_MAXIOV (1024) messages per sendmmsg call. */
#define BATCH 1024
/* Header + payload as separate pieces (the packetizer's Buffer[] layout) is at most this many. */
#define MAX_PIECES 8

#define CHECK(env, call)                                                      \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error((env), NULL, "udpcast mmsg helper: N-API call failed: " #call); \
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

/* argv's descriptor, checked to be a datagram socket; false (with a TypeError thrown) otherwise. */
static bool dgram_fd_arg(napi_env env, napi_value v, const char *fn, int32_t *fd) {
  char msg[96];
  int type = 0;
  socklen_t type_len = sizeof type;
  if (napi_get_value_int32(env, v, fd) != napi_ok || *fd < 0) {
    snprintf(msg, sizeof msg, "%s: fd must be a non-negative integer", fn);
  } else if (getsockopt(*fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_DGRAM) {
    snprintf(msg, sizeof msg, "%s: fd is not a datagram socket", fn);
  } else {
    return true;
  }
  napi_throw_type_error(env, NULL, msg);
  return false;
}

/* One datagram's bytes in iov: a Buffer, or an array of up to MAX_PIECES Buffers gathered; false
   (with a TypeError thrown) otherwise. */
static bool datagram_arg(napi_env env, napi_value v, const char *fn, struct iovec *iov, size_t *pieces) {
  char msg[96];
  bool is_array = false;
  if (napi_is_array(env, v, &is_array) == napi_ok && is_array) {
    uint32_t n = 0;
    if (napi_get_array_length(env, v, &n) != napi_ok || n == 0 || n > MAX_PIECES) {
      snprintf(msg, sizeof msg, "%s: a datagram must have 1-8 pieces", fn);
      napi_throw_type_error(env, NULL, msg);
      return false;
    }
    for (uint32_t i = 0; i < n; i++) {
      napi_value piece;
      if (napi_get_element(env, v, i, &piece) != napi_ok ||
          napi_get_buffer_info(env, piece, &iov[i].iov_base, &iov[i].iov_len) != napi_ok) {
        snprintf(msg, sizeof msg, "%s: each piece of a datagram must be a Buffer", fn);
        napi_throw_type_error(env, NULL, msg);
        return false;
      }
    }
    *pieces = n;
    return true;
  }
  if (napi_get_buffer_info(env, v, &iov[0].iov_base, &iov[0].iov_len) != napi_ok) {
    snprintf(msg, sizeof msg, "%s: a datagram must be a Buffer or an array of Buffers", fn);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  *pieces = 1;
  return true;
}

/* One sendmmsg(2) of msgs[0..batch) (retried on EINTR), counted into *sent and *next: true when
   the caller may go on with the next batch. A failure of the batch's first message is reported
   as -errno unless earlier ones went; a short batch stops (the next one would fail: the
   caller's next call says why). */
static bool send_batch(int fd, struct mmsghdr *msgs, uint32_t batch, int32_t *sent, uint32_t *next) {
  int r;
  do {
    r = sendmmsg(fd, msgs, batch, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (*sent == 0) *sent = -errno;
    return false;
  }
  *sent += r;
  *next += (uint32_t)r;
  return (uint32_t)r == batch;
}

static napi_value send_to_many(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) return throw_type(env, "sendToMany(fd, data, addresses, start): four arguments");

  int32_t fd = -1;
  if (!dgram_fd_arg(env, argv[0], "sendToMany", &fd)) return NULL;

  /* data: one Buffer, or an array of up to MAX_PIECES Buffers sent as one datagram. */
  struct iovec iov[MAX_PIECES];
  size_t pieces = 0;
  if (!datagram_arg(env, argv[1], "sendToMany", iov, &pieces)) return NULL;

  uint32_t count = 0;
  bool addresses_array = false;
  CHECK(env, napi_is_array(env, argv[2], &addresses_array));
  if (!addresses_array) return throw_type(env, "sendToMany: addresses must be an array");
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
    if (!send_batch(fd, msgs, batch, &sent, &next)) break;
  }
  napi_value out;
  CHECK(env, napi_create_int32(env, sent, &out));
  return out;
}

/* Datagrams of one sendEach call per sendmmsg(2): their iovecs are on the stack. */
#define SEND_EACH_BATCH 64

static napi_value send_each(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) return throw_type(env, "sendEach(fd, datagrams, address, start): four arguments");

  int32_t fd = -1;
  if (!dgram_fd_arg(env, argv[0], "sendEach", &fd)) return NULL;
  bool is_array = false;
  uint32_t count = 0;
  CHECK(env, napi_is_array(env, argv[1], &is_array));
  if (!is_array) return throw_type(env, "sendEach: datagrams must be an array");
  CHECK(env, napi_get_array_length(env, argv[1], &count));
  void *sa;
  size_t salen;
  if (napi_get_buffer_info(env, argv[2], &sa, &salen) != napi_ok ||
      (salen != sizeof(struct sockaddr_in) && salen != sizeof(struct sockaddr_in6)))
    return throw_type(env, "sendEach: the address must come from packAddress");
  uint32_t start = 0;
  if (napi_get_value_uint32(env, argv[3], &start) != napi_ok || start > count)
    return throw_type(env, "sendEach: start must be 0..datagrams.length");

  struct mmsghdr msgs[SEND_EACH_BATCH];
  struct iovec iov[SEND_EACH_BATCH][MAX_PIECES];
  int32_t sent = 0;
  uint32_t next = start;
  while (next < count) {
    uint32_t batch = count - next < SEND_EACH_BATCH ? count - next : SEND_EACH_BATCH;
    for (uint32_t i = 0; i < batch; i++) {
      napi_value d;
      size_t pieces = 0;
      CHECK(env, napi_get_element(env, argv[1], next + i, &d));
      if (!datagram_arg(env, d, "sendEach", iov[i], &pieces)) return NULL;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_name = sa;
      msgs[i].msg_hdr.msg_namelen = (socklen_t)salen;
      msgs[i].msg_hdr.msg_iov = iov[i];
      msgs[i].msg_hdr.msg_iovlen = pieces;
    }
    if (!send_batch(fd, msgs, batch, &sent, &next)) break;
  }
  napi_value out;
  CHECK(env, napi_create_int32(env, sent, &out));
  return out;
}

/* ---- receiving ---------------------------------------------------------------------------- */

/* Datagrams per recvmmsg(2) call, and calls per readable event before the loop gets its turn back. */
#define RECV_BATCH 64
#define RECV_ROUNDS 16
#define MAX_SLOT 65536

typedef struct receiver receiver_t;

/* What JS holds: outlives the receiver (cleared when it is freed) and is freed by the GC. */
typedef struct {
  receiver_t *r;
} box_t;

struct receiver {
  uv_poll_t poll; /* first: the uv handle's address is the receiver's */
  box_t *box;
  napi_env env;
  napi_ref on_batch;
  napi_ref on_error;
  napi_async_context async;
  int fd; /* our dup of the socket */
  size_t slot;
  int stopped;
  char *slab; /* RECV_BATCH slots of slot + 1 bytes */
  struct mmsghdr msgs[RECV_BATCH];
  struct iovec iov[RECV_BATCH];
  struct sockaddr_storage names[RECV_BATCH];
};

static void receiver_free(uv_handle_t *h) {
  receiver_t *r = (receiver_t *)h;
  if (r->box) r->box->r = NULL;
  close(r->fd); /* only now: libuv may still touch the descriptor until the close callback */
  free(r->slab);
  free(r);
}

static void receiver_cleanup_hook(void *arg);

/* Stops reading; the memory goes in the close callback. `from_hook`: the env is being torn down. */
static void receiver_stop(receiver_t *r, int from_hook) {
  if (r->stopped) return;
  r->stopped = 1;
  if (!from_hook) napi_remove_env_cleanup_hook(r->env, receiver_cleanup_hook, r);
  uv_poll_stop(&r->poll);
  napi_delete_reference(r->env, r->on_batch);
  napi_delete_reference(r->env, r->on_error);
  napi_async_destroy(r->env, r->async);
  uv_close((uv_handle_t *)&r->poll, receiver_free);
}

static void receiver_cleanup_hook(void *arg) { receiver_stop((receiver_t *)arg, 1); }

/* Calls fn(args) from the event loop: a callback scope, so promises and nextTicks it queues run. */
static void call_js(receiver_t *r, napi_ref fn_ref, size_t argc, napi_value *argv) {
  napi_value fn, recv, ignored;
  if (napi_get_reference_value(r->env, fn_ref, &fn) != napi_ok || fn == NULL) return;
  napi_get_global(r->env, &recv); /* napi_make_callback wants an object receiver */
  napi_make_callback(r->env, r->async, recv, fn, argc, argv, &ignored);
  bool pending = false;
  napi_is_exception_pending(r->env, &pending);
  if (pending) {
    /* An exception in the JS handler is the handler's bug: report it the way node reports one. */
    napi_value err;
    napi_get_and_clear_last_exception(r->env, &err);
    napi_fatal_exception(r->env, err);
  }
}

/* onError(errno, stopped): stopped says the receiver has given up and the caller must read instead. */
static void report_errno(receiver_t *r, int err, int stopped) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) return;
  napi_value argv[2];
  napi_create_int32(r->env, err, &argv[0]);
  napi_get_boolean(r->env, stopped != 0, &argv[1]);
  call_js(r, r->on_error, 2, argv);
  napi_close_handle_scope(r->env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  receiver_t *r = (receiver_t *)handle;
  (void)events;
  if (r->stopped) return;
  if (status < 0) {
    /* libuv stopped the poll on POLLERR (a pending socket error, e.g. one recvmmsg kept from a
       batch). Take the error off the socket and read on; if that fails, give reading back. */
    int soerr = 0;
    socklen_t len = sizeof soerr;
    getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    int again = uv_poll_start(&r->poll, UV_READABLE, on_readable);
    report_errno(r, soerr ? soerr : -status, again != 0);
    if (again != 0) receiver_stop(r, 0);
    return;
  }
  for (int round = 0; round < RECV_ROUNDS && !r->stopped; round++) {
    for (int i = 0; i < RECV_BATCH; i++) {
      r->msgs[i].msg_hdr.msg_namelen = sizeof r->names[i];
      r->msgs[i].msg_hdr.msg_flags = 0;
    }
    int n;
    do {
      n = recvmmsg(r->fd, r->msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      /* A descriptor that is gone would report forever: stop rather than spin. */
      int fatal = err == EBADF || err == ENOTSOCK;
      report_errno(r, err, fatal);
      if (fatal) receiver_stop(r, 0);
      return;
    }
    if (n == 0) return;

    napi_handle_scope scope;
    if (napi_open_handle_scope(r->env, &scope) != napi_ok) return;
    /* One Buffer for the whole batch, packed tight: datagram i is data[ends[i-1] .. ends[i]). A
       datagram the caller keeps (the relay's NACK history) keeps only this batch's bytes alive. */
    size_t total = 0;
    for (int i = 0; i < n; i++) total += r->msgs[i].msg_len;
    void *base = NULL;
    napi_value data, ends, addrs, ports;
    if (napi_create_buffer(r->env, total ? total : 1, &base, &data) != napi_ok) {
      napi_close_handle_scope(r->env, scope);
      return;
    }
    napi_create_array_with_length(r->env, (size_t)n, &ends);
    napi_create_array_with_length(r->env, (size_t)n, &addrs);
    napi_create_array_with_length(r->env, (size_t)n, &ports);
    size_t at = 0;
    napi_value addr = NULL, port = NULL;
    for (int i = 0; i < n; i++) {
      struct mmsghdr *m = &r->msgs[i];
      /* A cut datagram keeps its extra byte, so the caller's length check sees it as too long. */
      memcpy((char *)base + at, r->iov[i].iov_base, m->msg_len);
      at += m->msg_len;
      napi_value end;
      napi_create_uint32(r->env, (uint32_t)at, &end);
      napi_set_element(r->env, ends, (uint32_t)i, end);
      /* Media comes in runs from one publisher: a sender's address is made once per run. */
      const struct sockaddr_storage *ss = &r->names[i];
      if (!addr || m->msg_hdr.msg_namelen != r->msgs[i - 1].msg_hdr.msg_namelen ||
          memcmp(ss, &r->names[i - 1], m->msg_hdr.msg_namelen) != 0) {
        char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 1] = "";
        uint16_t p = 0;
        if (ss->ss_family == AF_INET) {
          const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
          inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
          p = ntohs(a->sin_port);
        } else if (ss->ss_family == AF_INET6) {
          const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
          inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
          p = ntohs(a->sin6_port);
          /* A link-local sender keeps its zone (fe80::1%eth0), as node's rinfo.address does. */
          char ifname[IF_NAMESIZE];
          if (a->sin6_scope_id != 0 && if_indextoname(a->sin6_scope_id, ifname)) {
            size_t used = strlen(text);
            snprintf(text + used, sizeof text - used, "%%%s", ifname);
          }
        }
        napi_create_string_latin1(r->env, text, NAPI_AUTO_LENGTH, &addr);
        napi_create_uint32(r->env, p, &port);
      }
      napi_set_element(r->env, addrs, (uint32_t)i, addr);
      napi_set_element(r->env, ports, (uint32_t)i, port);
    }
    napi_value argv[4] = {data, ends, addrs, ports};
    call_js(r, r->on_batch, 4, argv);
    napi_close_handle_scope(r->env, scope);
    if (n < RECV_BATCH) return; /* the queue is empty */
  }
}

static void receiver_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  /* A running receiver lives on until stopReceiving or the environment's cleanup hook. */
  box_t *box = data;
  if (box->r) box->r->box = NULL;
  free(box);
}

static napi_value start_receiving(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) return throw_type(env, "startReceiving(fd, slotBytes, onBatch, onError): four arguments");
  int32_t fd = -1;
  if (!dgram_fd_arg(env, argv[0], "startReceiving", &fd)) return NULL;
  uint32_t slot = 0;
  if (napi_get_value_uint32(env, argv[1], &slot) != napi_ok || slot == 0 || slot > MAX_SLOT)
    return throw_type(env, "startReceiving: slotBytes must be 1-65536");
  for (int i = 2; i < 4; i++) {
    napi_valuetype t;
    CHECK(env, napi_typeof(env, argv[i], &t));
    if (t != napi_function) return throw_type(env, "startReceiving: onBatch and onError must be functions");
  }
  uv_loop_t *loop = NULL;
  napi_value name;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  CHECK(env, napi_create_string_utf8(env, "udpcast:recvmmsg", NAPI_AUTO_LENGTH, &name));

  /* Everything is made before the poll starts; any failure undoes what was made, in reverse. */
  const char *failed = NULL;
  int uv_rc = 0;
  receiver_t *r = calloc(1, sizeof *r);
  char *slab = r ? malloc((size_t)RECV_BATCH * (slot + 1)) : NULL;
  box_t *box = slab ? malloc(sizeof *box) : NULL;
  int made_async = 0, made_batch = 0, made_error = 0;
  napi_value out;
  if (!r || !slab || !box) {
    failed = "out of memory";
    goto undo;
  }
  r->env = env;
  r->slot = slot;
  r->slab = slab;
  box->r = r;
  r->box = box;
  r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r->fd < 0) {
    failed = strerror(errno);
    goto undo;
  }
  for (int i = 0; i < RECV_BATCH; i++) {
    r->iov[i].iov_base = slab + (size_t)i * (slot + 1);
    r->iov[i].iov_len = slot + 1;
    r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->names[i];
  }
  if (napi_async_init(env, NULL, name, &r->async) != napi_ok) goto napi_failed;
  made_async = 1;
  if (napi_create_reference(env, argv[2], 1, &r->on_batch) != napi_ok) goto napi_failed;
  made_batch = 1;
  if (napi_create_reference(env, argv[3], 1, &r->on_error) != napi_ok) goto napi_failed;
  made_error = 1;
  if (napi_create_external(env, box, receiver_finalize, NULL, &out) != napi_ok) goto napi_failed;
  /* From here the external owns box: the GC frees it, whatever happens below. */
  box = NULL;
  if ((uv_rc = uv_poll_init(loop, &r->poll, r->fd)) != 0) {
    failed = uv_strerror(uv_rc);
    goto undo;
  }
  if ((uv_rc = uv_poll_start(&r->poll, UV_READABLE, on_readable)) != 0 ||
      napi_add_env_cleanup_hook(env, receiver_cleanup_hook, r) != napi_ok) {
    /* The handle was initialised: it must be closed through libuv, which frees r and the fd. */
    r->stopped = 1;
    napi_delete_reference(env, r->on_batch);
    napi_delete_reference(env, r->on_error);
    napi_async_destroy(env, r->async);
    uv_close((uv_handle_t *)&r->poll, receiver_free);
    char msg[96];
    snprintf(msg, sizeof msg, "startReceiving: %s", uv_rc ? uv_strerror(uv_rc) : "N-API call failed");
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  return out;

napi_failed:
  failed = "N-API call failed";
undo:
  if (made_error) napi_delete_reference(env, r->on_error);
  if (made_batch) napi_delete_reference(env, r->on_batch);
  if (made_async) napi_async_destroy(env, r->async);
  if (r && r->box && !box) r->box->r = NULL; /* the external outlives r: leave it empty */
  if (r && r->fd > 0) close(r->fd);
  free(box);
  free(slab);
  free(r);
  {
    char msg[128];
    snprintf(msg, sizeof msg, "startReceiving: %s", failed);
    napi_throw_error(env, NULL, msg);
  }
  return NULL;
}

static napi_value stop_receiving(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  napi_valuetype t = napi_undefined;
  if (argc == 1) CHECK(env, napi_typeof(env, argv[0], &t));
  if (t != napi_external || napi_get_value_external(env, argv[0], &data) != napi_ok || !data)
    return throw_type(env, "stopReceiving: not a receiver from startReceiving");
  receiver_t *r = ((box_t *)data)->r;
  if (r) receiver_stop(r, 0);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK(env, napi_create_function(env, "packAddress", NAPI_AUTO_LENGTH, pack_address, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "packAddress", fn));
  CHECK(env, napi_create_function(env, "sendToMany", NAPI_AUTO_LENGTH, send_to_many, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "sendToMany", fn));
  CHECK(env, napi_create_function(env, "sendEach", NAPI_AUTO_LENGTH, send_each, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "sendEach", fn));
  CHECK(env, napi_create_function(env, "startReceiving", NAPI_AUTO_LENGTH, start_receiving, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "startReceiving", fn));
  CHECK(env, napi_create_function(env, "stopReceiving", NAPI_AUTO_LENGTH, stop_receiving, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "stopReceiving", fn));
  return exports;
}

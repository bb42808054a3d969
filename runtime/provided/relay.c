/*
 * Skiff's Runtime API relay: the process a `provided` container starts. It speaks the worker
 * protocol (runtime/protocol/messages.ts: newline-delimited JSON on /run/skiff/worker.sock) on one
 * side and serves the AWS Lambda Runtime API (2018-06-01) on 127.0.0.1:9001 on the other, to the
 * function's own runtime: `$LAMBDA_TASK_ROOT/bootstrap`, or the command given as arguments (an
 * image's entrypoint).
 *
 *   worker → init     the relay sets Lambda's environment and starts the bootstrap
 *   bootstrap → GET invocation/next (first)   init is done: initDone
 *   worker → invoke   queued; handed to a waiting (or the next) GET invocation/next
 *   bootstrap → POST invocation/{id}/response | /error   → result
 *   bootstrap → POST init/error, exits, or asks for nothing within 10 s → initFailed
 *   the bootstrap's stdout/stderr → log frames of the invocation it is handling
 *
 * Written in C with libc only and linked statically, so the image needs no interpreter for it and
 * it costs a container a few hundred KiB, not the tens of MiB a Node.js relay would. One thread,
 * one poll loop; writes are blocking (the worker always reads; a bootstrap that does not read its
 * own answers only stalls itself, and the worker's timeout ends it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/skiff/worker.sock"
#define DEFAULT_TASK_ROOT "/var/task"
#define RUNTIME_DIR "/opt/skiff/runtime/provided"
#define DEFAULT_PORT 9001
#define PROTOCOL_VERSION 1
#define CONNECT_RETRY_MS 5000
/* Lambda's own bound on a runtime's init phase. */
#define INIT_TIMEOUT_MS 10000
#define MAX_CONNS 32
#define MAX_HEADER_BYTES (16 * 1024)
/* Bodies of /error and /init/error: errorMessage, errorType and a stack trace. */
#define MAX_ERROR_BODY_BYTES (1024 * 1024)
/* Output kept per invocation, as the other runtimes keep it (the worker bounds it again). */
#define LOG_BYTES_PER_INVOCATION (256 * 1024)
/* Names the relay's own failures; the worker treats them like any runtime's (Runtime.* types). */
#define RESULT_TOO_LARGE "Runtime.ResponseTooLarge"

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

typedef struct invocation {
  char *id;
  char *event; /* raw JSON text, as the worker sent it */
  size_t event_len;
  long long deadline_ms;
  char *trace_id;
  int delivered;
  long long delivered_at;
  size_t logged; /* bytes of log lines sent for it, bounded by LOG_BYTES_PER_INVOCATION */
  struct invocation *next;
} invocation_t;

typedef struct {
  int fd;
  buf_t in;
  int waiting_next; /* a GET invocation/next parked until an event comes */
  int continued;    /* "100 Continue" sent for the request being read */
} conn_t;

typedef struct {
  int fd;
  const char *name; /* "stdout" | "stderr" */
  int own_fd;       /* where lines outside any invocation go: the container's output */
  buf_t line;
  int cutting; /* inside a line past the limit: dropped up to its newline */
} stream_t;

static int worker_fd = -1;
static int listen_fd = -1;
static pid_t child = -1;
static conn_t conns[MAX_CONNS];
static stream_t streams[2];
static buf_t worker_in;
static invocation_t *invocations; /* queued and delivered, oldest first */
static int initialized;           /* init frame received */
static int init_done;             /* initDone or initFailed sent */
static long long init_started;
static size_t max_result_bytes = 6 * 1024 * 1024;
static size_t max_log_line_bytes = 16 * 1024;
static char *function_name = "";
static char task_root[4096] = DEFAULT_TASK_ROOT;

static long long wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  dprintf(2, "skiff relay: %s\n", text);
}

static void die(const char *what) {
  say("%s: %s", what, strerror(errno));
  exit(1);
}

/* ---- byte buffers ---- */

static void buf_reserve(buf_t *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  char *data = realloc(b->data, cap);
  if (!data) die("out of memory");
  b->data = data;
  b->cap = cap;
}

static void buf_add(buf_t *b, const void *p, size_t n) {
  buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
}

static void buf_adds(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_addf(buf_t *b, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  buf_add(b, text, n < (int)sizeof text ? (size_t)n : sizeof text - 1);
}

static void buf_consume(buf_t *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  if (b->data) b->data[b->len] = 0;
}

static void buf_free(buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* ---- JSON: just enough to read the worker's frames and check what the bootstrap posts ---- */

static const char *json_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* p at the opening quote; returns just past the closing one, or NULL if it is no valid string. */
static const char *json_skip_string(const char *p, const char *end) {
  p++;
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    if (c == '\\') {
      if (++p >= end) return NULL;
      if (*p == 'u') {
        if (end - p < 5) return NULL;
        for (int i = 1; i <= 4; i++)
          if (hexval(p[i]) < 0) return NULL;
        p += 4;
      } else if (!strchr("\"\\/bfnrt", *p)) {
        return NULL;
      }
    }
    p++;
  }
  return NULL;
}

static const char *json_skip_value(const char *p, const char *end, int depth) {
  if (depth > 512) return NULL;
  p = json_ws(p, end);
  if (p >= end) return NULL;
  if (*p == '"') return json_skip_string(p, end);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = json_ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = json_ws(p, end);
        if (p >= end || *p != '"' || !(p = json_skip_string(p, end))) return NULL;
        p = json_ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p++;
      }
      if (!(p = json_skip_value(p, end, depth + 1))) return NULL;
      p = json_ws(p, end);
      if (p >= end) return NULL;
      if (*p == close) return p + 1;
      if (*p != ',') return NULL;
      p++;
    }
  }
  if (end - p >= 4 && (!memcmp(p, "true", 4) || !memcmp(p, "null", 4))) return p + 4;
  if (end - p >= 5 && !memcmp(p, "false", 5)) return p + 5;
  const char *start = p;
  if (*p == '-') p++;
  if (p >= end || *p < '0' || *p > '9') return NULL;
  if (*p == '0') p++;
  else
    while (p < end && *p >= '0' && *p <= '9') p++;
  if (p < end && *p == '.') {
    p++;
    if (p >= end || *p < '0' || *p > '9') return NULL;
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || *p < '0' || *p > '9') return NULL;
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  return p > start ? p : NULL;
}

/* Whether [p, end) is exactly one JSON text (whitespace around allowed). */
static int json_valid(const char *p, const char *end) {
  const char *after = json_skip_value(p, end, 0);
  return after && json_ws(after, end) == end;
}

/* Appends a valid JSON text without the whitespace between its tokens: a frame holds no newline. */
static void json_minify(buf_t *out, const char *p, const char *end) {
  buf_reserve(out, (size_t)(end - p));
  int in_string = 0;
  for (; p < end; p++) {
    char c = *p;
    if (in_string) {
      out->data[out->len++] = c;
      if (c == '\\') out->data[out->len++] = *++p;
      else if (c == '"') in_string = 0;
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      out->data[out->len++] = c;
      if (c == '"') in_string = 1;
    }
  }
  out->data[out->len] = 0;
}

/* Appends `s` as a JSON string. Bytes over 0x7f pass as they are (the worker reads UTF-8). */
static void json_escape(buf_t *out, const char *s, size_t n) {
  buf_reserve(out, n + 2);
  out->data[out->len++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      buf_add(out, esc, 2);
    } else if (c < 0x20) {
      buf_addf(out, "\\u%04x", c);
    } else {
      buf_add(out, &s[i], 1);
    }
  }
  buf_add(out, "\"", 1);
}

static void utf8_put(buf_t *out, unsigned cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) b[0] = (char)cp, n = 1;
  else if (cp < 0x800) b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
  else if (cp < 0x10000)
    b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
  else
    b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)), b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)),
    b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
  buf_add(out, b, n);
}

static unsigned hex4(const char *p) { return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3])); }

/* The text of the (valid) JSON string at p, unescaped, as a new C string; NUL characters dropped. */
static char *json_string(const char *p, const char *end) {
  buf_t out = {0};
  buf_reserve(&out, 0);
  for (p++; p < end && *p != '"'; p++) {
    if (*p != '\\') {
      buf_add(&out, p, 1);
      continue;
    }
    char e = *++p;
    const char *plain = strchr("\"\\/bfnrt", e);
    if (plain) {
      buf_add(&out, &"\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"], 1);
      continue;
    }
    unsigned cp = hex4(p + 1);
    p += 4;
    if (cp >= 0xd800 && cp < 0xdc00 && end - p > 6 && p[1] == '\\' && p[2] == 'u') {
      unsigned low = hex4(p + 3);
      if (low >= 0xdc00 && low < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00), p += 6;
    }
    if (cp != 0) utf8_put(&out, cp);
  }
  return out.data;
}

/* The value of `key` in the (valid) object at p: its start, and its end in *vend; NULL if absent. */
static const char *json_member(const char *p, const char *end, const char *key, const char **vend) {
  p = json_ws(p, end);
  if (p >= end || *p != '{') return NULL;
  p = json_ws(p + 1, end);
  size_t klen = strlen(key);
  while (p < end && *p == '"') {
    const char *kend = json_skip_string(p, end);
    if (!kend) return NULL;
    int match = (size_t)(kend - p - 2) == klen && !memcmp(p + 1, key, klen);
    p = json_ws(kend, end);
    p = json_ws(p + 1, end); /* past ':' */
    const char *vstart = p;
    const char *after = json_skip_value(p, end, 0);
    if (!after) return NULL;
    if (match) {
      *vend = after;
      return vstart;
    }
    p = json_ws(after, end);
    if (p < end && *p == ',') p = json_ws(p + 1, end);
  }
  return NULL;
}

static char *member_string(const char *p, const char *end, const char *key) {
  const char *vend;
  const char *v = json_member(p, end, key, &vend);
  return v && *v == '"' ? json_string(v, vend) : NULL;
}

static long long member_number(const char *p, const char *end, const char *key, long long fallback) {
  const char *vend;
  const char *v = json_member(p, end, key, &vend);
  return v && (*v == '-' || (*v >= '0' && *v <= '9')) ? strtoll(v, NULL, 10) : fallback;
}

/* ---- frames to the worker ---- */

static void send_frame(buf_t *frame) {
  buf_add(frame, "\n", 1);
  if (write_all(worker_fd, frame->data, frame->len) < 0) {
    say("writing to the worker: %s", strerror(errno));
    exit(1);
  }
  buf_free(frame);
}

static void add_error(buf_t *f, const char *type, const char *message, const char *stack_json) {
  buf_adds(f, "{\"type\":");
  json_escape(f, type, strlen(type));
  buf_adds(f, ",\"message\":");
  json_escape(f, message, strlen(message));
  if (stack_json) {
    buf_adds(f, ",\"stack\":");
    buf_adds(f, stack_json);
  }
  buf_adds(f, "}");
}

static void send_init_failed(const char *type, const char *message, const char *stack_json) {
  if (init_done) return;
  init_done = 1;
  buf_t f = {0};
  buf_adds(&f, "{\"type\":\"initFailed\",\"error\":");
  add_error(&f, type, message, stack_json);
  buf_adds(&f, "}");
  send_frame(&f);
}

static void send_log(const char *id, const char *stream, const char *text, size_t n) {
  buf_t f = {0};
  buf_adds(&f, "{\"type\":\"log\",\"id\":");
  json_escape(&f, id, strlen(id));
  buf_addf(&f, ",\"stream\":\"%s\",\"text\":", stream);
  json_escape(&f, text, n);
  buf_addf(&f, ",\"at\":%lld}", wall_ms());
  send_frame(&f);
}

/* ---- the bootstrap's output: lines, attributed to the invocation it is handling ---- */

static invocation_t *only_delivered(void) {
  invocation_t *found = NULL;
  for (invocation_t *i = invocations; i; i = i->next)
    if (i->delivered) {
      if (found) return NULL;
      found = i;
    }
  return found;
}

static void emit_line(stream_t *s, const char *text, size_t n) {
  invocation_t *inv = only_delivered();
  if (inv) {
    if (inv->logged > LOG_BYTES_PER_INVOCATION) return;
    inv->logged += n;
    if (inv->logged <= LOG_BYTES_PER_INVOCATION) {
      send_log(inv->id, s->name, text, n);
    } else {
      char note[128];
      snprintf(note, sizeof note, "[skiff: log output of this invocation exceeded %d bytes; the rest is dropped]", LOG_BYTES_PER_INVOCATION);
      send_log(inv->id, s->name, note, strlen(note));
    }
  } else {
    buf_t line = {0};
    buf_add(&line, text, n);
    buf_add(&line, "\n", 1);
    write_all(s->own_fd, line.data, line.len);
    buf_free(&line);
  }
}

static void flush_partial(stream_t *s) {
  if (s->line.len > 0) emit_line(s, s->line.data, s->line.len);
  s->line.len = 0;
  s->cutting = 0;
}

static void take_output(stream_t *s, const char *p, size_t n) {
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t piece = nl ? (size_t)(nl - p) : n;
    if (!s->cutting) {
      size_t room = max_log_line_bytes - s->line.len;
      if (piece > room) {
        buf_add(&s->line, p, room);
        buf_addf(&s->line, " [skiff: line cut at %zu bytes]", max_log_line_bytes);
        emit_line(s, s->line.data, s->line.len);
        s->line.len = 0;
        s->cutting = 1;
      } else {
        buf_add(&s->line, p, piece);
      }
    }
    if (!nl) return;
    if (!s->cutting) emit_line(s, s->line.data, s->line.len);
    s->line.len = 0;
    s->cutting = 0;
    p = nl + 1;
    n -= piece + 1;
  }
}

/*
 * Reads one chunk (`drain`: all the pipe holds now); returns 0 once it is closed. One chunk per
 * turn of the loop, so a flood on one stream does not starve the other.
 */
static int read_output(stream_t *s, int drain) {
  char chunk[16384];
  for (;;) {
    ssize_t r = read(s->fd, chunk, sizeof chunk);
    if (r > 0) {
      take_output(s, chunk, (size_t)r);
      if (drain) continue;
      return 1;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return 1;
    flush_partial(s);
    close(s->fd);
    s->fd = -1;
    return 0;
  }
}

/* Output the bootstrap wrote before it answered belongs to the invocation it answered. */
static void drain_output(void) {
  for (int i = 0; i < 2; i++)
    if (streams[i].fd >= 0) {
      read_output(&streams[i], 1);
      if (streams[i].fd >= 0) flush_partial(&streams[i]);
    }
}

/* ---- invocations ---- */

static invocation_t *find_delivered(const char *id, size_t n) {
  for (invocation_t *i = invocations; i; i = i->next)
    if (i->delivered && strlen(i->id) == n && !memcmp(i->id, id, n)) return i;
  return NULL;
}

static void forget(invocation_t *inv) {
  for (invocation_t **p = &invocations; *p; p = &(*p)->next)
    if (*p == inv) {
      *p = inv->next;
      break;
    }
  free(inv->id);
  free(inv->event);
  free(inv->trace_id);
  free(inv);
}

static void send_result_ok(invocation_t *inv, const char *body, size_t n) {
  buf_t f = {0};
  buf_adds(&f, "{\"type\":\"result\",\"id\":");
  json_escape(&f, inv->id, strlen(inv->id));
  buf_adds(&f, ",\"ok\":true,\"value\":");
  const char *end = body + n;
  if (json_ws(body, end) == end) buf_adds(&f, "null"); /* an empty body: no value */
  else if (json_valid(body, end)) json_minify(&f, body, end);
  else json_escape(&f, body, n); /* not JSON: the bytes as a string */
  buf_addf(&f, ",\"durationMs\":%lld}", mono_ms() - inv->delivered_at);
  send_frame(&f);
  forget(inv);
}

static void send_result_error(invocation_t *inv, const char *type, const char *message, const char *stack_json) {
  buf_t f = {0};
  buf_adds(&f, "{\"type\":\"result\",\"id\":");
  json_escape(&f, inv->id, strlen(inv->id));
  buf_adds(&f, ",\"ok\":false,\"error\":");
  add_error(&f, type, message, stack_json);
  buf_addf(&f, ",\"durationMs\":%lld}", mono_ms() - inv->delivered_at);
  send_frame(&f);
  forget(inv);
}

/* Lambda's X-Ray header from a W3C traceparent `00-<32 hex>-<16 hex>-<2 hex>`, or a new root. */
static char *trace_header(const char *traceparent) {
  char out[128];
  if (traceparent && strlen(traceparent) == 55 && traceparent[2] == '-' && traceparent[35] == '-' && traceparent[52] == '-') {
    int sampled = hexval(traceparent[54]) & 1;
    snprintf(out, sizeof out, "Root=1-%.8s-%.24s;Parent=%.16s;Sampled=%d", traceparent + 3, traceparent + 11, traceparent + 36, sampled);
  } else {
    unsigned char r[12] = {0};
    if (getrandom(r, sizeof r, 0) < 0) memset(r, 0, sizeof r);
    int n = snprintf(out, sizeof out, "Root=1-%08llx-", (unsigned long long)(wall_ms() / 1000));
    for (int i = 0; i < 12; i++) n += snprintf(out + n, sizeof out - (size_t)n, "%02x", r[i]);
    snprintf(out + n, sizeof out - (size_t)n, ";Sampled=0");
  }
  return strdup(out);
}

/* ---- HTTP ---- */

static void reply(conn_t *c, int status, const char *reason, const char *extra_headers, const char *body, size_t n) {
  buf_t r = {0};
  buf_addf(&r, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n", status, reason);
  if (extra_headers) buf_adds(&r, extra_headers);
  buf_addf(&r, "Content-Length: %zu\r\n\r\n", n);
  buf_add(&r, body, n);
  write_all(c->fd, r.data, r.len);
  buf_free(&r);
}

static void reply_error(conn_t *c, int status, const char *reason, const char *type, const char *message) {
  buf_t b = {0};
  buf_adds(&b, "{\"errorMessage\":");
  json_escape(&b, message, strlen(message));
  buf_adds(&b, ",\"errorType\":");
  json_escape(&b, type, strlen(type));
  buf_adds(&b, "}");
  reply(c, status, reason, NULL, b.data, b.len);
  buf_free(&b);
}

static void reply_accepted(conn_t *c) {
  static const char ok[] = "{\"status\":\"OK\"}";
  reply(c, 202, "Accepted", NULL, ok, sizeof ok - 1);
}

static void mark_init_done(void) {
  if (init_done) return;
  init_done = 1;
  buf_t f = {0};
  buf_addf(&f, "{\"type\":\"initDone\",\"durationMs\":%lld}", mono_ms() - init_started);
  send_frame(&f);
}

static void deliver(conn_t *c, invocation_t *inv) {
  buf_t h = {0};
  buf_adds(&h, "Lambda-Runtime-Aws-Request-Id: ");
  buf_adds(&h, inv->id);
  buf_addf(&h, "\r\nLambda-Runtime-Deadline-Ms: %lld\r\n", inv->deadline_ms);
  buf_adds(&h, "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:local:000000000000:function:");
  buf_adds(&h, function_name);
  buf_adds(&h, "\r\nLambda-Runtime-Trace-Id: ");
  buf_adds(&h, inv->trace_id);
  buf_adds(&h, "\r\n");
  inv->delivered = 1;
  inv->delivered_at = mono_ms();
  c->waiting_next = 0;
  reply(c, 200, "OK", h.data, inv->event, inv->event_len);
  buf_free(&h);
}

static void offer_events(void) {
  for (invocation_t *inv = invocations; inv; inv = inv->next) {
    if (inv->delivered) continue;
    conn_t *waiting = NULL;
    for (int i = 0; i < MAX_CONNS && !waiting; i++)
      if (conns[i].fd >= 0 && conns[i].waiting_next) waiting = &conns[i];
    if (!waiting) return;
    deliver(waiting, inv);
  }
}

/* The error a runtime posted: errorType from the body, else the header, else Runtime.Unknown. */
static void posted_error(const char *body, size_t n, const char *header_type, char **type, char **message, char **stack) {
  const char *end = body + n;
  *type = NULL;
  *message = NULL;
  *stack = NULL;
  if (json_valid(body, end)) {
    *type = member_string(body, end, "errorType");
    *message = member_string(body, end, "errorMessage");
    const char *vend;
    const char *v = json_member(body, end, "stackTrace", &vend);
    if (v && *v == '[') {
      buf_t s = {0};
      json_minify(&s, v, vend);
      *stack = s.data;
    }
  }
  if (!*type || !**type) free(*type), *type = strdup(header_type && *header_type ? header_type : "Runtime.Unknown");
  if (!*message) *message = strdup(n > 0 && !json_valid(body, end) ? "the runtime reported an error whose body is not JSON" : "");
}

static const char PREFIX[] = "/2018-06-01/runtime/";

/* One complete request; returns 0 to close the connection after it. */
static int handle_request(conn_t *c, const char *method, const char *path, const char *error_type, const char *body, size_t n) {
  if (strncmp(path, PREFIX, sizeof PREFIX - 1) != 0) {
    reply_error(c, 404, "Not Found", "NotFound", "no such Runtime API resource");
    return 1;
  }
  const char *rest = path + sizeof PREFIX - 1;
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
  if (!strcmp(rest, "invocation/next") && get) {
    mark_init_done();
    c->waiting_next = 1;
    offer_events();
    return 1;
  }
  if (!strcmp(rest, "init/error") && post) {
    if (init_done) {
      reply_error(c, 403, "Forbidden", "InvalidStateTransition", "init/error after init ended");
      return 1;
    }
    char *type, *message, *stack;
    posted_error(body, n, error_type, &type, &message, &stack);
    reply_accepted(c);
    drain_output();
    send_init_failed(type, message, stack);
    free(type), free(message), free(stack);
    return 1;
  }
  if (!strncmp(rest, "invocation/", 11) && post) {
    const char *id = rest + 11;
    const char *slash = strchr(id, '/');
    const char *verb = slash ? slash + 1 : "";
    invocation_t *inv = slash ? find_delivered(id, (size_t)(slash - id)) : NULL;
    if (strcmp(verb, "response") && strcmp(verb, "error")) {
      reply_error(c, 404, "Not Found", "NotFound", "no such Runtime API resource");
      return 1;
    }
    if (!inv) {
      reply_error(c, 400, "Bad Request", "InvalidRequestID", "no invocation with that request id is waiting for an answer");
      return 1;
    }
    drain_output();
    if (!strcmp(verb, "response")) {
      reply_accepted(c);
      send_result_ok(inv, body, n);
    } else {
      char *type, *message, *stack;
      posted_error(body, n, error_type, &type, &message, &stack);
      reply_accepted(c);
      send_result_error(inv, type, message, stack);
      free(type), free(message), free(stack);
    }
    return 1;
  }
  reply_error(c, 405, "Method Not Allowed", "MethodNotAllowed", "that method is not allowed on this Runtime API resource");
  return 1;
}

static const char *header_value(const char *headers, const char *name, char *out, size_t cap) {
  size_t nlen = strlen(name);
  for (const char *line = headers; line && *line; line = strstr(line, "\r\n") ? strstr(line, "\r\n") + 2 : NULL) {
    if (!strncasecmp(line, name, nlen) && line[nlen] == ':') {
      const char *v = line + nlen + 1;
      while (*v == ' ' || *v == '\t') v++;
      const char *e = strstr(v, "\r\n");
      size_t len = e ? (size_t)(e - v) : strlen(v);
      while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) len--;
      if (len >= cap) len = cap - 1;
      memcpy(out, v, len);
      out[len] = 0;
      return out;
    }
    if (!strncmp(line, "\r\n", 2)) break;
  }
  return NULL;
}

static void close_conn(conn_t *c) {
  close(c->fd);
  c->fd = -1;
  c->waiting_next = 0;
  buf_free(&c->in);
}

/* Parses and answers every complete request in the connection's buffer. */
static void serve(conn_t *c) {
  while (c->fd >= 0 && !c->waiting_next) {
    char *head_end = strstr(c->in.data ? c->in.data : "", "\r\n\r\n");
    if (!head_end) {
      if (c->in.len > MAX_HEADER_BYTES) {
        reply_error(c, 431, "Request Header Fields Too Large", "InvalidRequest", "request headers over 16 KiB");
        close_conn(c);
      }
      return;
    }
    size_t head_len = (size_t)(head_end - c->in.data) + 4;
    head_end[2] = 0; /* the header block now ends with its last line's CRLF */
    char method[16], path[2048], version[16];
    if (sscanf(c->in.data, "%15s %2047s %15s", method, path, version) != 3) {
      reply_error(c, 400, "Bad Request", "InvalidRequest", "malformed request line");
      close_conn(c);
      return;
    }
    const char *headers = strstr(c->in.data, "\r\n") + 2;
    char value[256], error_type[256] = "";
    if (header_value(headers, "Transfer-Encoding", value, sizeof value)) {
      reply_error(c, 411, "Length Required", "InvalidRequest", "send the body with a Content-Length");
      close_conn(c);
      return;
    }
    size_t length = header_value(headers, "Content-Length", value, sizeof value) ? strtoull(value, NULL, 10) : 0;
    header_value(headers, "Lambda-Runtime-Function-Error-Type", error_type, sizeof error_type);
    int keep_alive = strcmp(version, "HTTP/1.0") != 0;
    if (header_value(headers, "Connection", value, sizeof value)) keep_alive = strcasecmp(value, "close") != 0;
    head_end[2] = '\r'; /* whole again: a body still coming is waited for with the head found anew */
    int is_response = strstr(path, "/response") != NULL;
    size_t limit = is_response ? max_result_bytes : MAX_ERROR_BODY_BYTES;
    if (length > limit) {
      /* Never buffered: answered at once, and the invocation fails as Lambda's does. */
      invocation_t *inv = NULL;
      if (is_response && !strncmp(path, PREFIX, sizeof PREFIX - 1) && !strncmp(path + sizeof PREFIX - 1, "invocation/", 11)) {
        const char *id = path + sizeof PREFIX - 1 + 11;
        const char *slash = strchr(id, '/');
        if (slash) inv = find_delivered(id, (size_t)(slash - id));
      }
      char message[160];
      snprintf(message, sizeof message, "the response is %zu bytes, over the limit of %zu bytes", length, limit);
      reply_error(c, 413, "Payload Too Large", "RequestEntityTooLarge", message);
      if (inv) drain_output(), send_result_error(inv, RESULT_TOO_LARGE, message, NULL);
      close_conn(c);
      return;
    }
    if (c->in.len < head_len + length) {
      /* curl waits a second for this before it sends a body it announced with Expect: 100-continue. */
      if (!c->continued && header_value(headers, "Expect", value, sizeof value) && !strcasecmp(value, "100-continue")) {
        static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
        write_all(c->fd, go_on, sizeof go_on - 1);
        c->continued = 1;
      }
      return; /* the body is still coming */
    }
    c->continued = 0;
    int keep = handle_request(c, method, path, error_type, c->in.data + head_len, length);
    if (c->fd < 0) return;
    buf_consume(&c->in, head_len + length);
    if (!keep || !keep_alive) {
      if (!c->waiting_next) close_conn(c);
      return;
    }
  }
}

static void read_conn(conn_t *c) {
  buf_reserve(&c->in, 65536);
  ssize_t r = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r <= 0) {
    close_conn(c); /* a parked GET next whose client left: its event waits for the next one */
    return;
  }
  c->in.len += (size_t)r;
  c->in.data[c->in.len] = 0;
  if (!c->waiting_next) serve(c);
}

static void accept_conn(void) {
  int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return;
  for (int i = 0; i < MAX_CONNS; i++)
    if (conns[i].fd < 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      conns[i].fd = fd;
      conns[i].waiting_next = 0;
      conns[i].continued = 0;
      return;
    }
  close(fd); /* more connections than a runtime needs */
}

/* ---- the bootstrap process ---- */

static void set_env(const char *name, const char *value) {
  if (setenv(name, value, 1) < 0) say("cannot set %s: %s", name, strerror(errno));
}

static void set_environment(const char *fn, const char *end, int port) {
  char number[32];
  if (!getenv("TZ")) set_env("TZ", "UTC");
  const char *vend;
  const char *env = json_member(fn, end, "env", &vend);
  if (env && *env == '{') {
    const char *p = json_ws(env + 1, vend);
    while (p < vend && *p == '"') {
      const char *kend = json_skip_string(p, vend);
      char *key = json_string(p, kend);
      p = json_ws(json_ws(kend, vend) + 1, vend);
      const char *after = json_skip_value(p, vend, 0);
      if (*p == '"' && key[0] && !strchr(key, '=')) {
        char *value = json_string(p, after);
        set_env(key, value);
        free(value);
      }
      free(key);
      p = json_ws(after, vend);
      if (p < vend && *p == ',') p = json_ws(p + 1, vend);
    }
  }
  /* Lambda's reserved variables win over the function's own. */
  char *handler = member_string(fn, end, "handler");
  long long version = member_number(fn, end, "version", 0);
  long long memory = member_number(fn, end, "memoryMb", 128);
  set_env("_HANDLER", handler ? handler : "");
  free(handler);
  set_env("LAMBDA_TASK_ROOT", task_root);
  set_env("LAMBDA_RUNTIME_DIR", RUNTIME_DIR);
  set_env("AWS_LAMBDA_FUNCTION_NAME", function_name);
  snprintf(number, sizeof number, "%lld", version);
  set_env("AWS_LAMBDA_FUNCTION_VERSION", number);
  snprintf(number, sizeof number, "%lld", memory);
  set_env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", number);
  buf_t s = {0};
  buf_adds(&s, "/skiff/");
  buf_adds(&s, function_name);
  set_env("AWS_LAMBDA_LOG_GROUP_NAME", s.data);
  buf_free(&s);
  /* Lambda's shape, YYYY/MM/DD/[version]id, with a random id per sandbox. */
  time_t t = time(NULL);
  struct tm day;
  gmtime_r(&t, &day);
  unsigned char r[16] = {0};
  if (getrandom(r, sizeof r, 0) < 0) memset(r, 0, sizeof r);
  char stream[96];
  int n = snprintf(stream, sizeof stream, "%04d/%02d/%02d/[%lld]", day.tm_year + 1900, day.tm_mon + 1, day.tm_mday, version);
  for (int i = 0; i < 16; i++) n += snprintf(stream + n, sizeof stream - (size_t)n, "%02x", r[i]);
  set_env("AWS_LAMBDA_LOG_STREAM_NAME", stream);
  set_env("AWS_REGION", "local");
  set_env("AWS_DEFAULT_REGION", "local");
  snprintf(number, sizeof number, "127.0.0.1:%d", port);
  set_env("AWS_LAMBDA_RUNTIME_API", number);
}

/* Starts the bootstrap with its stdout and stderr on pipes; returns an error text if it cannot run. */
static const char *start_bootstrap(char **argv, char *why, size_t why_cap) {
  int out[2], err[2], status[2];
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC) < 0) die("pipe");
  child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    dup2(out[1], 1);
    dup2(err[1], 2);
    int e = 0;
    if (chdir(task_root) < 0) e = errno;
    if (!e) execv(argv[0], argv), e = errno;
    if (write(status[1], &e, sizeof e) < 0) _exit(127);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  close(status[1]);
  int e = 0;
  ssize_t r;
  do r = read(status[0], &e, sizeof e);
  while (r < 0 && errno == EINTR);
  close(status[0]);
  streams[0] = (stream_t){.fd = out[0], .name = "stdout", .own_fd = 1};
  streams[1] = (stream_t){.fd = err[0], .name = "stderr", .own_fd = 2};
  for (int i = 0; i < 2; i++) fcntl(streams[i].fd, F_SETFL, O_NONBLOCK);
  if (r == (ssize_t)sizeof e) {
    snprintf(why, why_cap, "cannot run %s: %s", argv[0], strerror(e));
    return why;
  }
  return NULL;
}

/* ---- frames from the worker ---- */

static char **bootstrap_argv;

static void on_init(const char *frame, const char *end) {
  if (initialized) {
    say("ignoring a second init: a sandbox is specialized only once");
    return;
  }
  initialized = 1;
  init_started = mono_ms();
  const char *fend;
  const char *fn = json_member(frame, end, "function", &fend);
  if (!fn || *fn != '{') {
    send_init_failed("Runtime.InvalidInit", "init without a function", NULL);
    return;
  }
  char *name = member_string(fn, fend, "name");
  function_name = name ? name : "";
  const char *lend;
  const char *limits = json_member(frame, end, "limits", &lend);
  if (limits && *limits == '{') {
    long long result = member_number(limits, lend, "maxResultBytes", 0);
    long long line = member_number(limits, lend, "maxLogLineBytes", 0);
    if (result > 0) max_result_bytes = (size_t)result;
    if (line > 0) max_log_line_bytes = (size_t)line;
  }
  struct sockaddr_in addr;
  socklen_t alen = sizeof addr;
  getsockname(listen_fd, (struct sockaddr *)&addr, &alen);
  set_environment(fn, fend, ntohs(addr.sin_port));
  char why[4200];
  const char *failed = start_bootstrap(bootstrap_argv, why, sizeof why);
  if (failed) send_init_failed("Runtime.InvalidEntrypoint", failed, NULL);
}

static void on_invoke(const char *frame, const char *end) {
  invocation_t *inv = calloc(1, sizeof *inv);
  if (!inv) die("out of memory");
  inv->id = member_string(frame, end, "id");
  const char *vend;
  const char *event = json_member(frame, end, "event", &vend);
  if (!inv->id || !event) {
    say("ignoring a malformed invoke");
    free(inv->id), free(inv);
    return;
  }
  inv->event_len = (size_t)(vend - event);
  inv->event = malloc(inv->event_len + 1);
  if (!inv->event) die("out of memory");
  memcpy(inv->event, event, inv->event_len);
  inv->deadline_ms = member_number(frame, end, "deadlineMs", wall_ms());
  char *traceparent = member_string(frame, end, "traceparent");
  inv->trace_id = trace_header(traceparent);
  free(traceparent);
  invocation_t **tail = &invocations;
  while (*tail) tail = &(*tail)->next;
  *tail = inv;
  if (!init_done) return; /* it waits for the bootstrap's first GET next */
  offer_events();
}

static void read_worker(void) {
  buf_reserve(&worker_in, 65536);
  ssize_t r = read(worker_fd, worker_in.data + worker_in.len, worker_in.cap - worker_in.len - 1);
  if (r < 0 && errno == EINTR) return;
  if (r <= 0) {
    /* The worker closed the channel: the sandbox is done. */
    if (child > 0) kill(child, SIGKILL);
    exit(0);
  }
  worker_in.len += (size_t)r;
  worker_in.data[worker_in.len] = 0;
  char *nl;
  while ((nl = memchr(worker_in.data, '\n', worker_in.len))) {
    const char *end = nl;
    if (json_valid(worker_in.data, end)) {
      char *type = member_string(worker_in.data, end, "type");
      if (type && !strcmp(type, "init")) on_init(worker_in.data, end);
      else if (type && !strcmp(type, "invoke")) on_invoke(worker_in.data, end);
      else say("ignoring a frame this runtime does not understand");
      free(type);
    } else {
      say("ignoring a malformed frame");
    }
    buf_consume(&worker_in, (size_t)(nl - worker_in.data) + 1);
  }
}

/* The bootstrap exited: init fails, or the invocations it held fail; then the sandbox is done. */
static void on_child_exit(int status) {
  for (int i = 0; i < 2; i++)
    while (streams[i].fd >= 0 && read_output(&streams[i], 1)) {
      struct pollfd p = {.fd = streams[i].fd, .events = POLLIN};
      if (poll(&p, 1, 100) <= 0) break; /* a grandchild still holds the pipe open */
    }
  char message[256];
  if (WIFSIGNALED(status)) snprintf(message, sizeof message, "Runtime exited with error: signal %d", WTERMSIG(status));
  else snprintf(message, sizeof message, "Runtime exited with error: exit status %d", WEXITSTATUS(status));
  if (!init_done) {
    send_init_failed("Runtime.ExitError", message, NULL);
  } else {
    for (invocation_t *i = invocations, *next; i; i = next) {
      next = i->next;
      if (i->delivered) send_result_error(i, "Runtime.ExitError", message, NULL);
    }
  }
  /* Exiting closes the channel: the worker destroys the sandbox and fails what was still queued. */
  exit(0);
}

static int connect_worker(const char *path) {
  long long give_up = mono_ms() + CONNECT_RETRY_MS;
  for (;;) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) return fd;
    int e = errno;
    close(fd);
    if (mono_ms() > give_up) {
      errno = e;
      die("cannot reach the worker");
    }
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

static int listen_loopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("cannot listen on the Runtime API's address");
  if (listen(fd, 16) < 0) die("listen");
  return fd;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  const char *socket_path = getenv("SKIFF_RUNTIME_SOCKET");
  const char *root = getenv("SKIFF_TASK_ROOT");
  const char *port_text = getenv("SKIFF_RUNTIME_API_PORT");
  if (root && *root) snprintf(task_root, sizeof task_root, "%s", root);
  int port = port_text && *port_text ? atoi(port_text) : DEFAULT_PORT;
  /* Only the relay's own variables: the bootstrap must not see them. */
  unsetenv("SKIFF_RUNTIME_SOCKET");
  unsetenv("SKIFF_TASK_ROOT");
  unsetenv("SKIFF_RUNTIME_API_PORT");

  static char default_bootstrap[4200];
  static char *default_argv[2];
  if (argc > 1) {
    bootstrap_argv = argv + 1;
  } else {
    snprintf(default_bootstrap, sizeof default_bootstrap, "%s/bootstrap", task_root);
    default_argv[0] = default_bootstrap;
    bootstrap_argv = default_argv;
  }

  for (int i = 0; i < MAX_CONNS; i++) conns[i].fd = -1;
  streams[0].fd = streams[1].fd = -1;
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sig_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) die("signalfd");

  listen_fd = listen_loopback(port);
  worker_fd = connect_worker(socket_path && *socket_path ? socket_path : DEFAULT_SOCKET);
  buf_t hello = {0};
  buf_addf(&hello, "{\"type\":\"hello\",\"protocol\":%d,\"runtime\":\"provided\",\"pid\":%d}", PROTOCOL_VERSION, (int)getpid());
  send_frame(&hello);

  for (;;) {
    struct pollfd fds[5 + MAX_CONNS];
    int n = 0;
    fds[n++] = (struct pollfd){.fd = worker_fd, .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
    int first_stream = n;
    for (int i = 0; i < 2; i++) fds[n++] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
    int first_conn = n;
    for (int i = 0; i < MAX_CONNS; i++) fds[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
    int timeout = -1;
    if (initialized && !init_done) {
      long long left = init_started + INIT_TIMEOUT_MS - mono_ms();
      timeout = left > 0 ? (int)left : 0;
    }
    int ready = poll(fds, (nfds_t)n, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (ready == 0 && initialized && !init_done) {
      drain_output();
      send_init_failed("Runtime.InitTimeout", "the runtime did not ask for an event (GET /2018-06-01/runtime/invocation/next) within 10 s of starting", NULL);
      continue;
    }
    if (fds[0].revents) read_worker();
    if (fds[1].revents & POLLIN) accept_conn();
    for (int i = 0; i < 2; i++)
      if (streams[i].fd >= 0 && fds[first_stream + i].revents) read_output(&streams[i], 0);
    for (int i = 0; i < MAX_CONNS; i++)
      if (conns[i].fd >= 0 && fds[first_conn + i].fd == conns[i].fd && fds[first_conn + i].revents) read_conn(&conns[i]);
    if (fds[2].revents & POLLIN) {
      struct signalfd_siginfo info;
      while (read(sig_fd, &info, sizeof info) == (ssize_t)sizeof info) {
      }
      int status;
      pid_t pid;
      /* The relay is the container's pid 1: it reaps every orphan, and ends with the bootstrap. */
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (pid == child) on_child_exit(status);
    }
  }
}

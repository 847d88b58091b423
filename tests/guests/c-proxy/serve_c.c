/*
 * A wasi:http/proxy handler in C without libc: it imports the proxy world's functions only
 * (world proxy-c in tests/guests/wit-proxy/proxy.wit), no wasi:cli, no preview1 adapter.
 * Canonical-ABI bindings by hand (the rules are in ../c/wasi_http.h); memory for lists the
 * host returns comes from a bump allocator (one instance serves one request).
 *
 *   GET  /            200 "hello from c\n"
 *   POST /echo        200 "method M\npath P\nbytes N\n" then the request body
 *   GET  /big?mib=N   200 N MiB (default 4) of byte i = i % 251, 4 KiB writes, no content-length
 *   GET  /random      200 "time <s>.<6 digits>\nrandom <16 hex>\n" (wall clock, get-random-u64)
 *   GET  /fetch?url=http://HOST:PORT/PATH
 *                     200 "upstream <status> bytes <n>\n" + body, or 502 "upstream error <case #>\n"
 *   GET  /trap        traps (unreachable) before setting a response
 *   anything else     404 "no route P\n"
 */
#include <stddef.h>
#include <stdint.h>

#define IMPORT(module, name) __attribute__((import_module(module), import_name(name)))
#define TYPES "wasi:http/types@0.2.0"
#define STREAMS "wasi:io/streams@0.2.9"

typedef uint32_t handle;

/* ---- wasi:http/types: server side */
IMPORT(TYPES, "[method]incoming-request.method") void req_method(handle, void *ret);
IMPORT(TYPES, "[method]incoming-request.path-with-query") void req_path(handle, void *ret);
IMPORT(TYPES, "[method]incoming-request.consume") void req_consume(handle, void *ret);
IMPORT(TYPES, "[method]incoming-body.stream") void body_stream(handle, void *ret);
IMPORT(TYPES, "[constructor]fields") handle fields_new(void);
IMPORT(TYPES, "[method]fields.append") void fields_append(handle, const char *, size_t, const char *, size_t, void *ret);
IMPORT(TYPES, "[constructor]outgoing-response") handle resp_new(handle headers);
IMPORT(TYPES, "[method]outgoing-response.set-status-code") int32_t resp_set_status(handle, int32_t);
IMPORT(TYPES, "[method]outgoing-response.body") void resp_body(handle, void *ret);
IMPORT(TYPES, "[method]outgoing-body.write") void obody_write(handle, void *ret);
IMPORT(TYPES, "[static]outgoing-body.finish") void obody_finish(handle, int32_t has_trailers, handle, void *ret);
/* result<outgoing-response, error-code> flattens to 8 values: tag, then the join of the
 * handle with error-code's (i32 case, i32, i64, i32, i32, i32, i32). */
IMPORT(TYPES, "[static]response-outparam.set") void outparam_set(handle, int32_t is_err, int32_t, int32_t,
                                                                  int64_t, int32_t, int32_t, int32_t, int32_t);
IMPORT(TYPES, "[resource-drop]incoming-body") void drop_incoming_body(handle);
IMPORT(TYPES, "[resource-drop]incoming-request") void drop_incoming_request(handle);

/* ---- wasi:http/types + outgoing-handler: client side */
IMPORT(TYPES, "[constructor]outgoing-request") handle oreq_new(handle headers);
IMPORT(TYPES, "[method]outgoing-request.set-scheme") int32_t oreq_set_scheme(handle, int32_t some, int32_t tag, const char *, size_t);
IMPORT(TYPES, "[method]outgoing-request.set-authority") int32_t oreq_set_authority(handle, int32_t some, const char *, size_t);
IMPORT(TYPES, "[method]outgoing-request.set-path-with-query") int32_t oreq_set_path(handle, int32_t some, const char *, size_t);
IMPORT("wasi:http/outgoing-handler@0.2.0", "handle") void http_handle(handle, int32_t has_options, handle, void *ret);
IMPORT(TYPES, "[method]future-incoming-response.subscribe") handle future_subscribe(handle);
IMPORT(TYPES, "[method]future-incoming-response.get") void future_get(handle, void *ret);
IMPORT(TYPES, "[method]incoming-response.status") int32_t iresp_status(handle);
IMPORT(TYPES, "[method]incoming-response.consume") void iresp_consume(handle, void *ret);
IMPORT("wasi:io/poll@0.2.9", "[method]pollable.block") void pollable_block(handle);
IMPORT("wasi:io/poll@0.2.9", "[resource-drop]pollable") void drop_pollable(handle);

/* ---- wasi:io/streams, random, clocks */
IMPORT(STREAMS, "[method]input-stream.blocking-read") void in_read(handle, int64_t len, void *ret);
IMPORT(STREAMS, "[method]output-stream.blocking-write-and-flush") void out_write(handle, const void *, size_t, void *ret);
IMPORT(STREAMS, "[resource-drop]input-stream") void drop_input(handle);
IMPORT(STREAMS, "[resource-drop]output-stream") void drop_output(handle);
IMPORT("wasi:random/random@0.2.9", "get-random-u64") uint64_t random_u64(void);
IMPORT("wasi:clocks/wall-clock@0.2.9", "now") void wall_now(void *ret);

/* ---- memory: a bump allocator over memory.grow (nothing is ever freed) */
extern unsigned char __heap_base;
static uintptr_t heap_top = 0, heap_end = 0;

__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    if (!heap_top) heap_top = heap_end = (uintptr_t)&__heap_base;
    uintptr_t p = (heap_top + align - 1) & ~(uintptr_t)(align - 1);
    while (p + new_size > heap_end) {
        if (__builtin_wasm_memory_grow(0, 16) == (size_t)-1) __builtin_trap();  /* 1 MiB more */
        if (heap_end < (uintptr_t)__builtin_wasm_memory_size(0) * 65536) heap_end = __builtin_wasm_memory_size(0) * 65536;
    }
    heap_top = p + new_size;
    unsigned char *dst = (unsigned char *)p, *src = old;
    for (size_t i = 0; old && i < old_size && i < new_size; i++) dst[i] = src[i];
    return dst;
}

/* clang emits calls to these for struct copies and zeroing */
void *memcpy(void *d, const void *s, size_t n) { unsigned char *a = d; const unsigned char *b = s; while (n--) *a++ = *b++; return d; }
void *memset(void *d, int c, size_t n) { unsigned char *a = d; while (n--) *a++ = (unsigned char)c; return d; }

static size_t slen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static int starts(const char *s, size_t n, const char *prefix) {
    size_t m = slen(prefix);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++) if (s[i] != prefix[i]) return 0;
    return 1;
}

/* a growable byte buffer on the bump heap */
typedef struct { char *data; size_t len, cap; } buf;
static void put(buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n) cap *= 2;
        b->data = cabi_realloc(b->data, b->len, 1, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static void puts_(buf *b, const char *s) { put(b, s, slen(s)); }
static void putu(buf *b, uint64_t v, int width) {
    char tmp[24]; int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n < width) tmp[n++] = '0';
    while (n) put(b, &tmp[--n], 1);
}
static void puthex(buf *b, uint64_t v) {
    for (int i = 60; i >= 0; i -= 4) { char c = "0123456789abcdef"[(v >> i) & 15]; put(b, &c, 1); }
}

/* ---- reading a whole input stream */
static void read_all(handle stream, buf *out) {
    for (;;) {
        struct { uint8_t tag; uint8_t _p[3]; union { struct { char *ptr; size_t len; } ok; struct { uint8_t tag; handle err; } err; } v; } r;
        in_read(stream, 65536, &r);
        if (r.tag != 0) return;   /* closed (or failed): the end */
        put(out, r.v.ok.ptr, r.v.ok.len);
    }
}

/* ---- a response: status, content type, body chunks written in <= 4096-byte calls */
typedef struct { handle body, out; } writer;

static writer respond(handle outparam, int32_t status, const char *content_type) {
    handle headers = fields_new();
    struct { uint8_t tag; uint8_t err; } hr;
    fields_append(headers, "content-type", 12, content_type, slen(content_type), &hr);
    handle response = resp_new(headers);
    resp_set_status(response, status);
    struct { uint8_t tag; uint8_t _p[3]; handle h; } r;
    resp_body(response, &r);
    writer w = { r.h, 0 };
    outparam_set(outparam, 0, (int32_t)response, 0, 0, 0, 0, 0, 0);
    obody_write(w.body, &r);
    w.out = r.h;
    return w;
}
static void write_bytes(writer *w, const char *p, size_t n) {
    while (n) {
        size_t k = n < 4096 ? n : 4096;
        struct { uint8_t tag; uint8_t _p[3]; uint8_t etag; uint8_t _q[3]; handle err; } r;
        out_write(w->out, p, k, &r);
        if (r.tag != 0) __builtin_trap();
        p += k; n -= k;
    }
}
static void finish(writer *w) {
    drop_output(w->out);
    struct { uint8_t tag; uint8_t rest[39]; } r;
    obody_finish(w->body, 0, 0, &r);
}
static void respond_text(handle outparam, int32_t status, buf *b) {
    writer w = respond(outparam, status, "text/plain");
    write_bytes(&w, b->data, b->len);
    finish(&w);
}

/* ---- /fetch */
static void fetch(const char *url, size_t n, handle outparam) {
    buf out = {0};
    if (!starts(url, n, "http://")) { puts_(&out, "upstream error bad url\n"); respond_text(outparam, 502, &out); return; }
    const char *auth = url + 7, *end = url + n, *slash = auth;
    while (slash < end && *slash != '/') slash++;
    handle req = oreq_new(fields_new());
    oreq_set_scheme(req, 1, 0, 0, 0);   /* some(HTTP) */
    oreq_set_authority(req, 1, auth, (size_t)(slash - auth));
    if (slash < end) oreq_set_path(req, 1, slash, (size_t)(end - slash));
    else oreq_set_path(req, 1, "/", 1);
    struct { uint8_t tag; uint8_t _p[7]; union { handle future; uint8_t code; } v; uint8_t rest[32]; } h;
    http_handle(req, 0, 0, &h);
    if (h.tag != 0) {
        puts_(&out, "upstream error "); putu(&out, h.v.code, 1); puts_(&out, "\n");
        respond_text(outparam, 502, &out);
        return;
    }
    /* option<result<result<incoming-response, error-code>>>: tags at 0, 8, 16; payload at 24 */
    struct { uint8_t some; uint8_t _a[7]; uint8_t outer; uint8_t _b[7]; uint8_t inner; uint8_t _c[7];
             union { handle response; uint8_t code; } v; uint8_t rest[32]; } got;
    for (;;) {
        future_get(h.v.future, &got);
        if (got.some) break;
        handle ready = future_subscribe(h.v.future);
        pollable_block(ready);
        drop_pollable(ready);
    }
    if (got.outer != 0 || got.inner != 0) {
        puts_(&out, "upstream error "); putu(&out, got.inner != 0 ? got.v.code : 255, 1); puts_(&out, "\n");
        respond_text(outparam, 502, &out);
        return;
    }
    int32_t status = iresp_status(got.v.response);
    struct { uint8_t tag; uint8_t _p[3]; handle h; } r;
    iresp_consume(got.v.response, &r);
    handle body = r.h;
    body_stream(body, &r);
    buf data = {0};
    read_all(r.h, &data);
    drop_input(r.h);
    drop_incoming_body(body);
    puts_(&out, "upstream "); putu(&out, (uint64_t)status, 1);
    puts_(&out, " bytes "); putu(&out, data.len, 1); puts_(&out, "\n");
    put(&out, data.data, data.len);
    respond_text(outparam, 200, &out);
}

static uint64_t query_number(const char *q, size_t n, const char *key, uint64_t fallback) {
    size_t m = slen(key);
    for (size_t i = 0; i + m < n; i++) {
        if ((i == 0 || q[i - 1] == '&' || q[i - 1] == '?') && starts(q + i, n - i, key) && q[i + m] == '=') {
            uint64_t v = 0; size_t j = i + m + 1;
            if (j >= n || q[j] < '0' || q[j] > '9') return fallback;
            while (j < n && q[j] >= '0' && q[j] <= '9') v = v * 10 + (uint64_t)(q[j++] - '0');
            return v;
        }
    }
    return fallback;
}

static const char *method_name(uint8_t tag) {
    static const char *names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    return tag < 9 ? names[tag] : "OTHER";
}

__attribute__((export_name("wasi:http/incoming-handler@0.2.0#handle")))
void handle_request(handle request, handle outparam) {
    struct { uint8_t tag; uint8_t _p[3]; char *ptr; size_t len; } m, p;
    req_method(request, &m);
    req_path(request, &p);
    const char *target = p.tag ? p.ptr : "/";
    size_t tlen = p.tag ? p.len : 1, plen = 0;
    while (plen < tlen && target[plen] != '?') plen++;
    const char *query = target + plen;
    size_t qlen = tlen - plen;
    buf out = {0};

    if (plen == 1) {
        puts_(&out, "hello from c\n");
        respond_text(outparam, 200, &out);
    } else if (plen == 5 && starts(target, plen, "/echo")) {
        struct { uint8_t tag; uint8_t _p[3]; handle h; } r;
        req_consume(request, &r);
        handle body = r.h;
        body_stream(body, &r);
        buf data = {0};
        read_all(r.h, &data);
        drop_input(r.h);
        drop_incoming_body(body);
        puts_(&out, "method "); puts_(&out, method_name(m.tag));
        puts_(&out, "\npath "); put(&out, target, tlen);
        puts_(&out, "\nbytes "); putu(&out, data.len, 1); puts_(&out, "\n");
        put(&out, data.data, data.len);
        writer w = respond(outparam, 200, "application/octet-stream");
        write_bytes(&w, out.data, out.len);
        finish(&w);
    } else if (plen == 4 && starts(target, plen, "/big")) {
        static char block[65536 + 251];
        for (size_t i = 0; i < sizeof block; i++) block[i] = (char)(i % 251);
        uint64_t total = query_number(query, qlen, "mib", 4) << 20, sent = 0;
        writer w = respond(outparam, 200, "application/octet-stream");
        while (sent < total) {
            size_t k = total - sent < 65536 ? (size_t)(total - sent) : 65536;
            write_bytes(&w, block + sent % 251, k);
            sent += k;
        }
        finish(&w);
    } else if (plen == 7 && starts(target, plen, "/random")) {
        struct { uint64_t seconds; uint32_t nanos; } now;
        wall_now(&now);
        puts_(&out, "time "); putu(&out, now.seconds, 1); puts_(&out, ".");
        putu(&out, now.nanos / 1000, 6);
        puts_(&out, "\nrandom "); puthex(&out, random_u64()); puts_(&out, "\n");
        respond_text(outparam, 200, &out);
    } else if (plen == 6 && starts(target, plen, "/fetch") && qlen > 5 && starts(query, qlen, "?url=")) {
        fetch(query + 5, qlen - 5, outparam);
    } else if (plen == 5 && starts(target, plen, "/trap")) {
        __builtin_trap();
    } else {
        puts_(&out, "no route "); put(&out, target, plen); puts_(&out, "\n");
        respond_text(outparam, 404, &out);
    }
    drop_incoming_request(request);
}

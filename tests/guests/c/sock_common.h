/*
 * Helpers shared by the socket guests (tcp_client, tcp_server, udp_client, resolve), on top of the
 * raw ABI in wasi_sockets.h. Header-only because build.sh compiles each .c file as its own program.
 * Output contract (tests/guests/README_SOCKETS.md): one line per step on stdout; a failed wasi:sockets
 * call prints `<step> error <error-code case>` and exits 1 (the adapter turns every non-zero exit
 * into status 1 anyway).
 */
#ifndef SOCK_COMMON_H
#define SOCK_COMMON_H

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wasi_sockets.h"

/* Largest read asked of the host at once. */
#define SOCK_READ_CHUNK 65536

static inline _Noreturn void sock_fail(const char *step, uint8_t code) {
    printf("%s error %s\n", step, sock_error_name(code));
    fflush(stdout);
    exit(1);
}

static inline _Noreturn void sock_usage(const char *usage) {
    fprintf(stderr, "usage: %s\n", usage);
    exit(2);
}

/* "127.0.0.1" or "::1" (no brackets) plus a port; returns -1 for anything else. */
static inline int sock_parse(const char *ip, const char *port, sock_address *out) {
    char *end;
    unsigned long p = strtoul(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p > 65535) return -1;
    memset(out, 0, sizeof *out);
    uint8_t raw[16];
    if (inet_pton(AF_INET, ip, raw) == 1) {
        out->family = SOCK_IPV4;
        out->u.v4.port = (uint16_t)p;
        memcpy(out->u.v4.addr, raw, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, raw) == 1) {
        out->family = SOCK_IPV6;
        out->u.v6.port = (uint16_t)p;
        for (int i = 0; i < 8; i++) out->u.v6.addr[i] = (uint16_t)(raw[2 * i] << 8 | raw[2 * i + 1]);
        return 0;
    }
    return -1;
}

/* The address without its port, as inet_ntop writes it ("127.0.0.1", "::1"). */
static inline const char *sock_ip_text(uint8_t family, const uint8_t *v4, const uint16_t *v6, char *buf) {
    uint8_t raw[16];
    if (family == SOCK_IPV4) return inet_ntop(AF_INET, v4, buf, INET6_ADDRSTRLEN);
    for (int i = 0; i < 8; i++) {
        raw[2 * i] = (uint8_t)(v6[i] >> 8);
        raw[2 * i + 1] = (uint8_t)v6[i];
    }
    return inet_ntop(AF_INET6, raw, buf, INET6_ADDRSTRLEN);
}

static inline const char *sock_address_ip(const sock_address *a, char *buf) {
    return sock_ip_text(a->family, a->u.v4.addr, a->u.v6.addr, buf);
}

static inline unsigned sock_address_port(const sock_address *a) {
    return a->family == SOCK_IPV4 ? a->u.v4.port : a->u.v6.port;
}

/* "127.0.0.1:7" or "[::1]:7" */
static inline const char *sock_address_text(const sock_address *a, char *buf) {
    char ip[INET6_ADDRSTRLEN];
    sock_address_ip(a, ip);
    sprintf(buf, a->family == SOCK_IPV4 ? "%s:%u" : "[%s]:%u", ip, sock_address_port(a));
    return buf;
}
#define SOCK_ADDRESS_TEXT_MAX (INET6_ADDRSTRLEN + 8)

/* The same address family's unspecified address ("0.0.0.0" / "::") with port 0. */
static inline sock_address sock_any(uint8_t family) {
    sock_address a;
    memset(&a, 0, sizeof a);
    a.family = family;
    return a;
}

/* Blocks on a socket's pollable (taken once, dropped here) until `retry` stops answering
 * would-block. The guests use this for finish-bind, finish-listen, finish-connect and accept. */
#define SOCK_AWAIT(subscribe_call, retry_call, result)                           \
    do {                                                                         \
        retry_call;                                                              \
        if ((result).is_err && (result).val.err == SOCK_ERR_WOULD_BLOCK) {       \
            wasi_handle pollable_ = (subscribe_call);                            \
            while ((result).is_err && (result).val.err == SOCK_ERR_WOULD_BLOCK) { \
                wasi_pollable_block(pollable_);                                  \
                retry_call;                                                      \
            }                                                                    \
            wasi_pollable_drop(pollable_);                                       \
        }                                                                        \
    } while (0)

typedef struct {
    wasi_handle socket, in, out;
} sock_tcp_conn;

static inline void sock_drop_stream_error(const wasi_stream_error *e) {
    if (e->tag == STREAM_ERROR_LAST_OPERATION_FAILED) wasi_io_error_drop(e->error);
}

/* Writes all of buf, in blocking-write-and-flush calls of at most 4096 bytes (the most a host must
 * accept at once). Returns 0, or -1 when the stream failed or closed. */
static inline int sock_write_all(wasi_handle out, const uint8_t *buf, size_t len) {
    while (len > 0) {
        size_t n = len < 4096 ? len : 4096;
        wasi_result_unit_stream_error r;
        wasi_output_stream_blocking_write_and_flush(out, buf, n, &r);
        if (r.is_err) {
            sock_drop_stream_error(&r.err);
            return -1;
        }
        buf += n;
        len -= n;
    }
    return 0;
}

/* Reads until '\n' (kept out of the result) or end of stream, at most cap-1 bytes; NUL-terminated.
 * Bytes after the newline in the same read are a protocol error for these guests' line exchanges.
 * Returns the length, or -1 when the stream ended before any byte. */
static inline long sock_read_line(wasi_handle in, char *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        wasi_result_bytes_stream_error r;
        wasi_input_stream_blocking_read(in, cap - 1 - len, &r);
        if (r.is_err) {
            sock_drop_stream_error(&r.val.err);
            buf[len] = '\0';
            return len ? (long)len : -1;
        }
        memcpy(buf + len, r.val.ok.ptr, r.val.ok.len);
        len += r.val.ok.len;
        wasi_list_free(r.val.ok.ptr, r.val.ok.len);
        if ((len && buf[len - 1] == '\n') || len == cap - 1) break;
    }
    if (len && buf[len - 1] == '\n') len--;
    buf[len] = '\0';
    return (long)len;
}

static inline uint64_t fnv1a64_update(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
#define FNV1A64_INIT 0xcbf29ce484222325ULL

#endif

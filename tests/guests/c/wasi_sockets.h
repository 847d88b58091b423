/*
 * Hand-written canonical-ABI bindings for the parts of wasi:sockets@0.2.12 (and the wasi:io and
 * wasi:clocks functions they need) that the socket guests call. Debian's wasi-libc is a preview1
 * libc with no socket(), so these guests talk to wasi:sockets directly, as a wasip2 libc would.
 * The WIT they follow is tests/guests/wit/deps/sockets.wit; the world is
 * tests/guests/wit/sockets-client.wit.
 *
 * The ABI rules are those listed at the top of wasi_http.h (handles are i32, a string or list is
 * (ptr, len), variants flatten to a discriminant plus the slot-wise join of their cases, a result
 * of more than one flat value comes back through a retptr). Two more apply here:
 *  - ip-socket-address flattens to 12 i32s: the case, then ipv4 (port, a0..a3) or ipv6 (port,
 *    flow-info, a0..a7, scope-id), unused slots 0. start-connect's 2 + 12 params stay under the
 *    16-param limit, so it is passed flat; option<ip-socket-address> adds one is-some slot first.
 *  - in memory, ip-socket-address is a u8 case then its record at offset 4 (ipv6's u32 fields
 *    give it alignment 4): 32 bytes. ip-address (no port) is a u8 case then u8[4] or u16[8] at 2.
 *
 * The wasi:io part repeats wasi_http.h's declarations (same C names and layouts) so that each
 * header stands alone: a guest includes one of them.
 * The _Static_asserts pin every layout this file relies on.
 */
#ifndef WASI_SOCKETS_H
#define WASI_SOCKETS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define WASI_IMPORT(module, name) \
    __attribute__((import_module(module), import_name(name)))

/* Start-up: the same reason and fix as wasi_http_init in wasi_http.h (these guests export
 * cabi_realloc too, so main must run the constructors itself and flush stdout before returning). */
extern void __wasm_call_ctors(void);
static volatile int wasi_sockets_ctors_ran;
__attribute__((constructor)) static void wasi_sockets_mark_ctors_ran(void) { wasi_sockets_ctors_ran = 1; }
static inline void wasi_sockets_init(void) {
    if (!wasi_sockets_ctors_ran) __wasm_call_ctors();
}

/* Allocator the host uses for the lists it returns (read, receive, poll). */
__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    if (new_size == 0) return (void *)align;
    void *p = realloc(ptr, new_size);
    if (!p) abort();
    return p;
}

typedef int32_t wasi_handle;

/* ---- wasi:sockets/network types ---------------------------------------------------------- */

/* error-code, in declaration order (the enum's discriminant indexes this). */
static const char *const SOCK_ERROR_CODE_NAMES[] = {
    "unknown", "access-denied", "not-supported", "invalid-argument", "out-of-memory", "timeout",
    "concurrency-conflict", "not-in-progress", "would-block", "invalid-state", "new-socket-limit",
    "address-not-bindable", "address-in-use", "remote-unreachable", "connection-refused",
    "connection-reset", "connection-aborted", "datagram-too-large", "name-unresolvable",
    "temporary-resolver-failure", "permanent-resolver-failure",
};
_Static_assert(sizeof(SOCK_ERROR_CODE_NAMES) / sizeof(SOCK_ERROR_CODE_NAMES[0]) == 21,
               "error-code has 21 cases");
enum { SOCK_ERR_WOULD_BLOCK = 8 };

static inline const char *sock_error_name(uint8_t code) {
    return code < 21 ? SOCK_ERROR_CODE_NAMES[code] : "unknown-error-code";
}

enum { SOCK_IPV4 = 0, SOCK_IPV6 = 1 };              /* ip-address-family, and the address cases */
enum { SOCK_SHUTDOWN_RECEIVE = 0, SOCK_SHUTDOWN_SEND = 1, SOCK_SHUTDOWN_BOTH = 2 };

/* ip-socket-address in memory (32 bytes, align 4). */
typedef struct {
    uint8_t family; /* SOCK_IPV4 / SOCK_IPV6 */
    union {
        struct { uint16_t port; uint8_t addr[4]; } v4;
        struct { uint16_t port; uint32_t flow_info; uint16_t addr[8]; uint32_t scope_id; } v6;
    } u;
} sock_address;
_Static_assert(offsetof(sock_address, u) == 4, "payload at 4");
_Static_assert(offsetof(sock_address, u.v4.addr) == 6, "ipv4 address at 4+2");
_Static_assert(offsetof(sock_address, u.v6.flow_info) == 8, "flow-info at 4+4");
_Static_assert(offsetof(sock_address, u.v6.addr) == 12, "ipv6 address at 4+8");
_Static_assert(offsetof(sock_address, u.v6.scope_id) == 28, "scope-id at 4+24");
_Static_assert(sizeof(sock_address) == 32, "ip-socket-address is 32 bytes");

/* ip-address in memory (18 bytes, align 2). */
typedef struct {
    uint8_t family;
    union { uint8_t v4[4]; uint16_t v6[8]; } u;
} sock_ip;
_Static_assert(offsetof(sock_ip, u) == 2, "payload at 2");
_Static_assert(sizeof(sock_ip) == 18, "ip-address is 18 bytes");

/* The 12 flat slots of an ip-socket-address parameter. */
#define SOCK_FLAT_PARAMS int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, \
                         int32_t, int32_t, int32_t, int32_t, int32_t, int32_t
typedef struct { int32_t v[12]; } sock_flat_address;

static inline sock_flat_address sock_flatten(const sock_address *a) {
    sock_flat_address f = {{0}};
    f.v[0] = a->family;
    if (a->family == SOCK_IPV4) {
        f.v[1] = a->u.v4.port;
        for (int i = 0; i < 4; i++) f.v[2 + i] = a->u.v4.addr[i];
    } else {
        f.v[1] = a->u.v6.port;
        f.v[2] = (int32_t)a->u.v6.flow_info;
        for (int i = 0; i < 8; i++) f.v[3 + i] = a->u.v6.addr[i];
        f.v[11] = (int32_t)a->u.v6.scope_id;
    }
    return f;
}
#define SOCK_FLAT_ARGS(f) (f).v[0], (f).v[1], (f).v[2], (f).v[3], (f).v[4], (f).v[5], \
                          (f).v[6], (f).v[7], (f).v[8], (f).v[9], (f).v[10], (f).v[11]

/* ---- results returned through a retptr ---------------------------------------------------- */

/* result<_, error-code> (the union only gives every result type the same `val.err` spelling) */
typedef struct { uint8_t is_err; union { uint8_t err; } val; } sock_result_unit;
_Static_assert(sizeof(sock_result_unit) == 2, "size 2");

/* result<own<T>, error-code> */
typedef struct {
    uint8_t is_err;
    union { wasi_handle ok; uint8_t err; } val;
} sock_result_handle;
_Static_assert(offsetof(sock_result_handle, val) == 4, "payload at 4");

/* result<tuple<own<input-stream>, own<output-stream>>, error-code> (finish-connect), and the
 * datagram-stream pair of udp-socket.stream. */
typedef struct {
    uint8_t is_err;
    union { struct { wasi_handle in, out; } ok; uint8_t err; } val;
} sock_result_pair;
_Static_assert(offsetof(sock_result_pair, val) == 4 && sizeof(sock_result_pair) == 12, "pair");

/* result<tuple<own<tcp-socket>, own<input-stream>, own<output-stream>>, error-code> (accept) */
typedef struct {
    uint8_t is_err;
    union { struct { wasi_handle socket, in, out; } ok; uint8_t err; } val;
} sock_result_accept;
_Static_assert(offsetof(sock_result_accept, val) == 4 && sizeof(sock_result_accept) == 16, "accept");

/* result<ip-socket-address, error-code> */
typedef struct {
    uint8_t is_err;
    union { sock_address ok; uint8_t err; } val;
} sock_result_address;
_Static_assert(offsetof(sock_result_address, val) == 4 && sizeof(sock_result_address) == 36, "address");

/* result<option<ip-address>, error-code> (resolve-next-address) */
typedef struct {
    uint8_t is_err;
    union { struct { uint8_t is_some; sock_ip ip; } ok; uint8_t err; } val;
} sock_result_next_ip;
_Static_assert(offsetof(sock_result_next_ip, val) == 2, "payload at 2");
_Static_assert(offsetof(sock_result_next_ip, val.ok.ip) == 4, "ip-address at 2+2");
_Static_assert(sizeof(sock_result_next_ip) == 22, "size 22");

/* result<u64, error-code> (check-send, send) */
typedef struct {
    uint8_t is_err;
    union { uint64_t ok; uint8_t err; } val;
} sock_result_u64;
_Static_assert(offsetof(sock_result_u64, val) == 8 && sizeof(sock_result_u64) == 16, "u64");

/* udp incoming-datagram { data: list<u8>, remote-address } and outgoing-datagram
 * { data: list<u8>, remote-address: option<ip-socket-address> } */
typedef struct { uint8_t *data; size_t len; sock_address remote; } sock_incoming_datagram;
_Static_assert(offsetof(sock_incoming_datagram, remote) == 8 && sizeof(sock_incoming_datagram) == 40,
               "incoming-datagram");
typedef struct {
    const uint8_t *data; size_t len;
    uint8_t has_remote; sock_address remote;
} sock_outgoing_datagram;
_Static_assert(offsetof(sock_outgoing_datagram, remote) == 12 && sizeof(sock_outgoing_datagram) == 44,
               "outgoing-datagram");

/* result<list<incoming-datagram>, error-code> */
typedef struct {
    uint8_t is_err;
    union { struct { sock_incoming_datagram *ptr; size_t len; } ok; uint8_t err; } val;
} sock_result_datagrams;
_Static_assert(offsetof(sock_result_datagrams, val) == 4 && sizeof(sock_result_datagrams) == 12, "datagrams");

/* ---- wasi:io (same declarations as wasi_http.h) -------------------------------------------- */

enum { STREAM_ERROR_LAST_OPERATION_FAILED = 0, STREAM_ERROR_CLOSED = 1 };
typedef struct {
    uint8_t tag;
    wasi_handle error; /* own<wasi:io/error.error> when tag == 0 */
} wasi_stream_error;

typedef struct {
    uint8_t is_err;
    union {
        struct { uint8_t *ptr; size_t len; } ok; /* allocated through cabi_realloc */
        wasi_stream_error err;
    } val;
} wasi_result_bytes_stream_error;
_Static_assert(sizeof(wasi_result_bytes_stream_error) == 12, "size 12");

typedef struct {
    uint8_t is_err;
    wasi_stream_error err;
} wasi_result_unit_stream_error;
_Static_assert(offsetof(wasi_result_unit_stream_error, err) == 4, "payload at 4");

/* result<u64, stream-error> (check-write) */
typedef struct {
    uint8_t is_err;
    union { uint64_t ok; wasi_stream_error err; } val;
} wasi_result_u64_stream_error;
_Static_assert(offsetof(wasi_result_u64_stream_error, val) == 8, "payload at 8");

typedef struct { void *ptr; size_t len; } wasi_list;

/* A list the host returned: an empty one was not allocated (its pointer is only aligned). */
static inline void wasi_list_free(void *ptr, size_t len) {
    if (len) free(ptr);
}

WASI_IMPORT("wasi:io/error@0.2.12", "[resource-drop]error")
void wasi_io_error_drop(wasi_handle error);

WASI_IMPORT("wasi:io/poll@0.2.12", "poll")
void wasi_io_poll(const wasi_handle *pollables, size_t count, wasi_list *ret);
WASI_IMPORT("wasi:io/poll@0.2.12", "[method]pollable.block")
void wasi_pollable_block(wasi_handle self);
WASI_IMPORT("wasi:io/poll@0.2.12", "[resource-drop]pollable")
void wasi_pollable_drop(wasi_handle self);

WASI_IMPORT("wasi:io/streams@0.2.12", "[method]input-stream.read")
void wasi_input_stream_read(wasi_handle self, uint64_t len, wasi_result_bytes_stream_error *ret);
WASI_IMPORT("wasi:io/streams@0.2.12", "[method]input-stream.blocking-read")
void wasi_input_stream_blocking_read(wasi_handle self, uint64_t len,
                                     wasi_result_bytes_stream_error *ret);
WASI_IMPORT("wasi:io/streams@0.2.12", "[method]input-stream.subscribe")
wasi_handle wasi_input_stream_subscribe(wasi_handle self);
WASI_IMPORT("wasi:io/streams@0.2.12", "[method]output-stream.check-write")
void wasi_output_stream_check_write(wasi_handle self, wasi_result_u64_stream_error *ret);
WASI_IMPORT("wasi:io/streams@0.2.12", "[method]output-stream.write")
void wasi_output_stream_write(wasi_handle self, const uint8_t *ptr, size_t len,
                              wasi_result_unit_stream_error *ret);
WASI_IMPORT("wasi:io/streams@0.2.12", "[method]output-stream.blocking-write-and-flush")
void wasi_output_stream_blocking_write_and_flush(wasi_handle self, const uint8_t *ptr, size_t len,
                                                 wasi_result_unit_stream_error *ret);
WASI_IMPORT("wasi:io/streams@0.2.12", "[method]output-stream.blocking-flush")
void wasi_output_stream_blocking_flush(wasi_handle self, wasi_result_unit_stream_error *ret);
WASI_IMPORT("wasi:io/streams@0.2.12", "[method]output-stream.subscribe")
wasi_handle wasi_output_stream_subscribe(wasi_handle self);
WASI_IMPORT("wasi:io/streams@0.2.12", "[resource-drop]input-stream")
void wasi_input_stream_drop(wasi_handle self);
WASI_IMPORT("wasi:io/streams@0.2.12", "[resource-drop]output-stream")
void wasi_output_stream_drop(wasi_handle self);

WASI_IMPORT("wasi:clocks/monotonic-clock@0.2.12", "subscribe-duration")
wasi_handle wasi_monotonic_subscribe_duration(uint64_t nanoseconds);

/* ---- wasi:sockets@0.2.12 -------------------------------------------------------------------- */

WASI_IMPORT("wasi:sockets/instance-network@0.2.12", "instance-network")
wasi_handle sock_instance_network(void);
WASI_IMPORT("wasi:sockets/network@0.2.12", "[resource-drop]network")
void sock_network_drop(wasi_handle self);

WASI_IMPORT("wasi:sockets/tcp-create-socket@0.2.12", "create-tcp-socket")
void sock_create_tcp_socket(int32_t family, sock_result_handle *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.start-bind")
void sock_tcp_start_bind(wasi_handle self, wasi_handle network, SOCK_FLAT_PARAMS, sock_result_unit *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.finish-bind")
void sock_tcp_finish_bind(wasi_handle self, sock_result_unit *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.start-connect")
void sock_tcp_start_connect(wasi_handle self, wasi_handle network, SOCK_FLAT_PARAMS, sock_result_unit *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.finish-connect")
void sock_tcp_finish_connect(wasi_handle self, sock_result_pair *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.start-listen")
void sock_tcp_start_listen(wasi_handle self, sock_result_unit *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.finish-listen")
void sock_tcp_finish_listen(wasi_handle self, sock_result_unit *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.accept")
void sock_tcp_accept(wasi_handle self, sock_result_accept *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.local-address")
void sock_tcp_local_address(wasi_handle self, sock_result_address *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.remote-address")
void sock_tcp_remote_address(wasi_handle self, sock_result_address *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.subscribe")
wasi_handle sock_tcp_subscribe(wasi_handle self);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[method]tcp-socket.shutdown")
void sock_tcp_shutdown(wasi_handle self, int32_t how, sock_result_unit *ret);
WASI_IMPORT("wasi:sockets/tcp@0.2.12", "[resource-drop]tcp-socket")
void sock_tcp_drop(wasi_handle self);

WASI_IMPORT("wasi:sockets/udp-create-socket@0.2.12", "create-udp-socket")
void sock_create_udp_socket(int32_t family, sock_result_handle *ret);
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]udp-socket.start-bind")
void sock_udp_start_bind(wasi_handle self, wasi_handle network, SOCK_FLAT_PARAMS, sock_result_unit *ret);
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]udp-socket.finish-bind")
void sock_udp_finish_bind(wasi_handle self, sock_result_unit *ret);
/* stream(remote-address: option<ip-socket-address>): is-some, then the 12 address slots. */
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]udp-socket.stream")
void sock_udp_stream(wasi_handle self, int32_t has_remote, SOCK_FLAT_PARAMS, sock_result_pair *ret);
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]udp-socket.local-address")
void sock_udp_local_address(wasi_handle self, sock_result_address *ret);
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]udp-socket.subscribe")
wasi_handle sock_udp_subscribe(wasi_handle self);
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]incoming-datagram-stream.receive")
void sock_udp_receive(wasi_handle self, uint64_t max_results, sock_result_datagrams *ret);
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]incoming-datagram-stream.subscribe")
wasi_handle sock_udp_incoming_subscribe(wasi_handle self);
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]outgoing-datagram-stream.check-send")
void sock_udp_check_send(wasi_handle self, sock_result_u64 *ret);
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]outgoing-datagram-stream.send")
void sock_udp_send(wasi_handle self, const sock_outgoing_datagram *ptr, size_t len, sock_result_u64 *ret);
WASI_IMPORT("wasi:sockets/udp@0.2.12", "[method]outgoing-datagram-stream.subscribe")
wasi_handle sock_udp_outgoing_subscribe(wasi_handle self);

WASI_IMPORT("wasi:sockets/ip-name-lookup@0.2.12", "resolve-addresses")
void sock_resolve_addresses(wasi_handle network, const char *name, size_t len, sock_result_handle *ret);
WASI_IMPORT("wasi:sockets/ip-name-lookup@0.2.12", "[method]resolve-address-stream.resolve-next-address")
void sock_resolve_next_address(wasi_handle self, sock_result_next_ip *ret);
WASI_IMPORT("wasi:sockets/ip-name-lookup@0.2.12", "[method]resolve-address-stream.subscribe")
wasi_handle sock_resolve_subscribe(wasi_handle self);
WASI_IMPORT("wasi:sockets/ip-name-lookup@0.2.12", "[resource-drop]resolve-address-stream")
void sock_resolve_stream_drop(wasi_handle self);

#endif

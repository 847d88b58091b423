/*
 * Hand-written canonical-ABI bindings for the parts of wasi:http@0.2.0 and wasi:io@0.2.0
 * that the http_*.c guests call (no wit-bindgen on the registries this project uses).
 * The WIT they follow is tests/guests/wit/deps (generated from the built guests by wasm-tools); the world is
 * tests/guests/wit/http-client.wit.
 *
 * Canonical ABI rules applied here (wasm32, so a pointer and size_t are i32):
 *  - a resource handle (own<T> or borrow<T>) is an i32;
 *  - a string or list<T> parameter is two params (ptr, len); strings are UTF-8;
 *  - u8/u16/u32/bool/enum params are i32, u64 is i64;
 *  - option<T> / result / variant params flatten to an i32 discriminant followed by the
 *    union of the cases' flattened payloads (joined slot by slot);
 *  - a result that flattens to more than one value is written by the callee to memory at a
 *    "retptr" the caller passes as the last param, with the memory layout below; lists and
 *    strings inside it are allocated by the callee through our exported cabi_realloc;
 *  - memory layout: a variant is its discriminant (u8 for < 256 cases) then the payload at
 *    the payload's alignment; a record lays its fields out in order with natural alignment.
 * The _Static_asserts pin every layout this file relies on.
 */
#ifndef WASI_HTTP_H
#define WASI_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define WASI_IMPORT(module, name) \
    __attribute__((import_module(module), import_name(name)))

/* Start-up, needed because these guests export cabi_realloc (below).
 * wasm-ld wraps every export of a command module in "run __wasm_call_ctors, call, run
 * __wasm_call_dtors". For cabi_realloc, which the host calls in the middle of an import
 * (blocking-read returning its list), the dtors flush stdio, stdio calls back into the host, and
 * the runtime traps ("cannot leave component instance"). lld leaves exports unwrapped when the
 * input calls __wasm_call_ctors itself, so main starts with wasi_http_init(), which runs the
 * constructors unless a newer crt1 already did. The older crt1 (Debian's wasi-libc) then runs
 * no destructors after main returns, so a guest flushes stdout itself before `return 0`
 * (exit() flushes, but ends the run through wasi:cli/exit instead of returning from run). */
extern void __wasm_call_ctors(void);
/* volatile: else clang folds the constructor's store into the initial value and drops the check. */
static volatile int wasi_http_ctors_ran;
__attribute__((constructor)) static void wasi_http_mark_ctors_ran(void) { wasi_http_ctors_ran = 1; }
static inline void wasi_http_init(void) {
    if (!wasi_http_ctors_ran) __wasm_call_ctors();
}

/* Allocator the host uses for lists/strings it returns (fields.entries, blocking-read). */
__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    if (new_size == 0) return (void *)align;
    void *p = realloc(ptr, new_size);
    if (!p) abort();
    return p;
}

/* Every resource handle is an i32 index into the component's handle table. */
typedef int32_t wasi_handle;

/* ---- memory layouts of results returned through a retptr ---------------------------- */

/* wasi:http/types error-code: 39 cases, u8 discriminant; the widest payload is
 * option<field-size-payload> (24 bytes) and option<u64> forces 8-byte alignment. Only the
 * case matters to the guests, so the payload is kept opaque. */
typedef struct {
    uint8_t tag;
    _Alignas(8) uint8_t payload[24];
} http_error_code;
_Static_assert(sizeof(http_error_code) == 32, "error-code size");
_Static_assert(_Alignof(http_error_code) == 8, "error-code align");

/* result<own<T>, error-code> (outgoing-handler.handle). */
typedef struct {
    uint8_t is_err;
    union { wasi_handle ok; http_error_code err; } val;
} http_result_handle_error_code;
_Static_assert(offsetof(http_result_handle_error_code, val) == 8, "payload at 8");
_Static_assert(sizeof(http_result_handle_error_code) == 40, "size 40");

/* option<error-code> (http-error-code). */
typedef struct {
    uint8_t is_some;
    http_error_code val;
} http_option_error_code;
_Static_assert(offsetof(http_option_error_code, val) == 8, "payload at 8");

/* result<_, error-code> (outgoing-body.finish). */
typedef struct {
    uint8_t is_err;
    http_error_code err;
} http_result_unit_error_code;
_Static_assert(offsetof(http_result_unit_error_code, err) == 8, "payload at 8");

/* future-incoming-response.get: option<result<result<own<incoming-response>, error-code>>>.
 * The outer result's error means "already taken"; the inner one is the request's outcome. */
typedef struct {
    uint8_t is_some;
    struct {
        uint8_t is_err;
        http_result_handle_error_code val;
    } val;
} http_future_get_result;
_Static_assert(offsetof(http_future_get_result, val) == 8, "outer result at 8");
_Static_assert(offsetof(http_future_get_result, val.val) == 16, "inner result at 16");
_Static_assert(offsetof(http_future_get_result, val.val.val) == 24, "response at 24");
_Static_assert(sizeof(http_future_get_result) == 56, "size 56");

/* result<own<T>> with a unit error (outgoing-request.body, incoming-body.stream, ...). */
typedef struct {
    uint8_t is_err;
    wasi_handle ok;
} wasi_result_handle;
_Static_assert(offsetof(wasi_result_handle, ok) == 4, "handle at 4");

/* wasi:io/streams stream-error: variant { last-operation-failed(own<error>), closed }. */
enum { STREAM_ERROR_LAST_OPERATION_FAILED = 0, STREAM_ERROR_CLOSED = 1 };
typedef struct {
    uint8_t tag;
    wasi_handle error; /* own<wasi:io/error.error>, valid when tag == 0; must be dropped */
} wasi_stream_error;

/* result<list<u8>, stream-error> (blocking-read). */
typedef struct {
    uint8_t is_err;
    union {
        struct { uint8_t *ptr; size_t len; } ok; /* allocated through cabi_realloc */
        wasi_stream_error err;
    } val;
} wasi_result_bytes_stream_error;
_Static_assert(offsetof(wasi_result_bytes_stream_error, val) == 4, "payload at 4");
_Static_assert(sizeof(wasi_result_bytes_stream_error) == 12, "size 12");

/* result<_, stream-error> (blocking-write-and-flush). */
typedef struct {
    uint8_t is_err;
    wasi_stream_error err;
} wasi_result_unit_stream_error;
_Static_assert(offsetof(wasi_result_unit_stream_error, err) == 4, "payload at 4");

/* list<tuple<string, list<u8>>> element (fields.entries). */
typedef struct {
    char *name; size_t name_len;
    uint8_t *value; size_t value_len;
} http_field_entry;
_Static_assert(sizeof(http_field_entry) == 16, "tuple<string, list<u8>> is 16 bytes");

/* list<T> returned through a retptr: (ptr, len). */
typedef struct { void *ptr; size_t len; } wasi_list;

/* Discriminants of the `method` and `scheme` variants. */
enum { HTTP_METHOD_GET = 0, HTTP_METHOD_POST = 2 };
enum { HTTP_SCHEME_HTTP = 0, HTTP_SCHEME_HTTPS = 1 };
/* header-error enum: 0 invalid-syntax, 1 forbidden, 2 immutable. */

/* ---- wasi:io/error@0.2.0 -------------------------------------------------------------- */
WASI_IMPORT("wasi:io/error@0.2.12", "[resource-drop]error")
void wasi_io_error_drop(wasi_handle error);

/* ---- wasi:io/poll@0.2.0 --------------------------------------------------------------- */
/* poll(in: list<borrow<pollable>>) -> list<u32>: indexes (into `in`) of the ready ones. */
WASI_IMPORT("wasi:io/poll@0.2.12", "poll")
void wasi_io_poll(const wasi_handle *pollables, size_t count, wasi_list *ret);
WASI_IMPORT("wasi:io/poll@0.2.12", "[method]pollable.block")
void wasi_pollable_block(wasi_handle self);
WASI_IMPORT("wasi:io/poll@0.2.12", "[resource-drop]pollable")
void wasi_pollable_drop(wasi_handle self);

/* ---- wasi:io/streams@0.2.0 ------------------------------------------------------------ */
WASI_IMPORT("wasi:io/streams@0.2.12", "[method]input-stream.blocking-read")
void wasi_input_stream_blocking_read(wasi_handle self, uint64_t len,
                                     wasi_result_bytes_stream_error *ret);
WASI_IMPORT("wasi:io/streams@0.2.12", "[method]output-stream.blocking-write-and-flush")
void wasi_output_stream_blocking_write_and_flush(wasi_handle self, const uint8_t *ptr,
                                                 size_t len,
                                                 wasi_result_unit_stream_error *ret);
WASI_IMPORT("wasi:io/streams@0.2.12", "[resource-drop]input-stream")
void wasi_input_stream_drop(wasi_handle self);
WASI_IMPORT("wasi:io/streams@0.2.12", "[resource-drop]output-stream")
void wasi_output_stream_drop(wasi_handle self);

/* ---- wasi:http/types@0.2.0 ------------------------------------------------------------ */
/* http-error-code(borrow<io-error>) -> option<error-code>: the HTTP cause of a stream error. */
WASI_IMPORT("wasi:http/types@0.2.0", "http-error-code")
void http_error_code_of(wasi_handle io_error, http_option_error_code *ret);

WASI_IMPORT("wasi:http/types@0.2.0", "[constructor]fields")
wasi_handle http_fields_new(void);
/* append(name: string, value: list<u8>) -> result<_, header-error>: retptr {u8 is_err, u8 enum}. */
WASI_IMPORT("wasi:http/types@0.2.0", "[method]fields.append")
void http_fields_append(wasi_handle self, const char *name, size_t name_len,
                        const uint8_t *value, size_t value_len, uint8_t ret[2]);
WASI_IMPORT("wasi:http/types@0.2.0", "[method]fields.entries")
void http_fields_entries(wasi_handle self, wasi_list *ret);
WASI_IMPORT("wasi:http/types@0.2.0", "[resource-drop]fields")
void http_fields_drop(wasi_handle self);

/* constructor(headers: own<headers>): takes ownership of the fields. */
WASI_IMPORT("wasi:http/types@0.2.0", "[constructor]outgoing-request")
wasi_handle http_outgoing_request_new(wasi_handle headers);
/* set-method(method): variant flattened to (case, string ptr, string len); -> result (0 ok). */
WASI_IMPORT("wasi:http/types@0.2.0", "[method]outgoing-request.set-method")
int32_t http_outgoing_request_set_method(wasi_handle self, int32_t method, const char *other,
                                         size_t other_len);
/* set-scheme(option<scheme>): (is_some, case, string ptr, string len). */
WASI_IMPORT("wasi:http/types@0.2.0", "[method]outgoing-request.set-scheme")
int32_t http_outgoing_request_set_scheme(wasi_handle self, int32_t is_some, int32_t scheme,
                                         const char *other, size_t other_len);
/* set-authority / set-path-with-query(option<string>): (is_some, ptr, len). */
WASI_IMPORT("wasi:http/types@0.2.0", "[method]outgoing-request.set-authority")
int32_t http_outgoing_request_set_authority(wasi_handle self, int32_t is_some, const char *s,
                                            size_t len);
WASI_IMPORT("wasi:http/types@0.2.0", "[method]outgoing-request.set-path-with-query")
int32_t http_outgoing_request_set_path_with_query(wasi_handle self, int32_t is_some,
                                                  const char *s, size_t len);
WASI_IMPORT("wasi:http/types@0.2.0", "[method]outgoing-request.body")
void http_outgoing_request_body(wasi_handle self, wasi_result_handle *ret);

WASI_IMPORT("wasi:http/types@0.2.0", "[method]outgoing-body.write")
void http_outgoing_body_write(wasi_handle self, wasi_result_handle *ret);
/* finish(this: own<outgoing-body>, trailers: option<own<trailers>>) -> result<_, error-code>. */
WASI_IMPORT("wasi:http/types@0.2.0", "[static]outgoing-body.finish")
void http_outgoing_body_finish(wasi_handle self, int32_t has_trailers, wasi_handle trailers,
                               http_result_unit_error_code *ret);

WASI_IMPORT("wasi:http/types@0.2.0", "[method]future-incoming-response.subscribe")
wasi_handle http_future_incoming_response_subscribe(wasi_handle self);
WASI_IMPORT("wasi:http/types@0.2.0", "[method]future-incoming-response.get")
void http_future_incoming_response_get(wasi_handle self, http_future_get_result *ret);
WASI_IMPORT("wasi:http/types@0.2.0", "[resource-drop]future-incoming-response")
void http_future_incoming_response_drop(wasi_handle self);

WASI_IMPORT("wasi:http/types@0.2.0", "[method]incoming-response.status")
int32_t http_incoming_response_status(wasi_handle self); /* u16 */
/* headers() -> own<headers>: a child of the response, drop it before the response. */
WASI_IMPORT("wasi:http/types@0.2.0", "[method]incoming-response.headers")
wasi_handle http_incoming_response_headers(wasi_handle self);
WASI_IMPORT("wasi:http/types@0.2.0", "[method]incoming-response.consume")
void http_incoming_response_consume(wasi_handle self, wasi_result_handle *ret);
WASI_IMPORT("wasi:http/types@0.2.0", "[resource-drop]incoming-response")
void http_incoming_response_drop(wasi_handle self);

/* stream() -> result<own<input-stream>>: a child of the body, drop it before the body. */
WASI_IMPORT("wasi:http/types@0.2.0", "[method]incoming-body.stream")
void http_incoming_body_stream(wasi_handle self, wasi_result_handle *ret);
WASI_IMPORT("wasi:http/types@0.2.0", "[resource-drop]incoming-body")
void http_incoming_body_drop(wasi_handle self);

/* ---- wasi:http/outgoing-handler@0.2.0 ------------------------------------------------- */
/* handle(request: own<outgoing-request>, options: option<own<request-options>>)
 *   -> result<own<future-incoming-response>, error-code> */
WASI_IMPORT("wasi:http/outgoing-handler@0.2.0", "handle")
void http_outgoing_handler_handle(wasi_handle request, int32_t has_options, wasi_handle options,
                                  http_result_handle_error_code *ret);

/* Case names of error-code, in declaration order (the discriminant indexes this). */
static const char *const HTTP_ERROR_CODE_NAMES[] = {
    "DNS-timeout", "DNS-error", "destination-not-found", "destination-unavailable",
    "destination-IP-prohibited", "destination-IP-unroutable", "connection-refused",
    "connection-terminated", "connection-timeout", "connection-read-timeout",
    "connection-write-timeout", "connection-limit-reached", "TLS-protocol-error",
    "TLS-certificate-error", "TLS-alert-received", "HTTP-request-denied",
    "HTTP-request-length-required", "HTTP-request-body-size", "HTTP-request-method-invalid",
    "HTTP-request-URI-invalid", "HTTP-request-URI-too-long",
    "HTTP-request-header-section-size", "HTTP-request-header-size",
    "HTTP-request-trailer-section-size", "HTTP-request-trailer-size",
    "HTTP-response-incomplete", "HTTP-response-header-section-size",
    "HTTP-response-header-size", "HTTP-response-body-size",
    "HTTP-response-trailer-section-size", "HTTP-response-trailer-size",
    "HTTP-response-transfer-coding", "HTTP-response-content-coding", "HTTP-response-timeout",
    "HTTP-upgrade-failed", "HTTP-protocol-error", "loop-detected", "configuration-error",
    "internal-error",
};
_Static_assert(sizeof(HTTP_ERROR_CODE_NAMES) / sizeof(HTTP_ERROR_CODE_NAMES[0]) == 39,
               "error-code has 39 cases");

static inline const char *http_error_code_name(const http_error_code *e) {
    return e->tag < 39 ? HTTP_ERROR_CODE_NAMES[e->tag] : "unknown-error-code";
}

#endif

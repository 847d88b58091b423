/*
 * Request/response helpers shared by the http_*.c guests, on top of the raw ABI in wasi_http.h.
 * Header-only because the guest build compiles each .c file in this directory as its own program.
 * Failures of the host's HTTP calls are reported as `error <error-code case>` on stdout with
 * exit status 2, the contract the guests' README (tests/guests/README_HTTP.md) gives.
 */
#ifndef WASI_HTTP_CLIENT_H
#define WASI_HTTP_CLIENT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wasi_http.h"

/* Largest read asked of the host at once; far below the ~2.6 MiB per-call limit hosts have. */
#define BODY_READ_CHUNK 65536

/* An http:// or https:// URL split the way outgoing-request wants it. */
typedef struct {
    int scheme;              /* HTTP_SCHEME_HTTP or HTTP_SCHEME_HTTPS */
    const char *authority;   /* host[:port], not NUL-terminated */
    size_t authority_len;
    const char *path;        /* path-with-query; "/" when the URL has none */
    size_t path_len;
} http_url;

/* Returns 0 on success, -1 for a URL that is not http(s)://authority[/path][?query]. */
static inline int http_url_parse(const char *url, http_url *out) {
    const char *rest;
    if (strncmp(url, "http://", 7) == 0) {
        out->scheme = HTTP_SCHEME_HTTP;
        rest = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        out->scheme = HTTP_SCHEME_HTTPS;
        rest = url + 8;
    } else {
        return -1;
    }
    size_t authority_len = strcspn(rest, "/?#");
    if (authority_len == 0) return -1;
    out->authority = rest;
    out->authority_len = authority_len;
    const char *path = rest + authority_len;
    size_t path_len = strcspn(path, "#"); /* a fragment is never sent */
    if (path_len == 0 || path[0] == '?') {
        /* "" -> "/", "?q" -> "/?q": the request target always starts with '/'. */
        char *with_slash = malloc(path_len + 2);
        if (!with_slash) abort();
        with_slash[0] = '/';
        memcpy(with_slash + 1, path, path_len);
        with_slash[path_len + 1] = '\0';
        path = with_slash;
        path_len += 1;
    }
    out->path = path;
    out->path_len = path_len;
    return 0;
}

static inline _Noreturn void http_fail(const char *case_name) {
    printf("error %s\n", case_name);
    fflush(stdout);
    exit(2);
}

/* Adds a header; a rejected one (forbidden name, bad syntax) is a bug in the guest. */
static inline void http_fields_add(wasi_handle fields, const char *name, const char *value) {
    uint8_t ret[2];
    http_fields_append(fields, name, strlen(name), (const uint8_t *)value, strlen(value), ret);
    if (ret[0]) {
        fprintf(stderr, "header %s rejected (header-error %u)\n", name, ret[1]);
        exit(1);
    }
}

/* Builds an outgoing-request for `url` with `method`, taking ownership of `headers`. */
static inline wasi_handle http_request_new(const http_url *url, int32_t method, wasi_handle headers) {
    wasi_handle request = http_outgoing_request_new(headers);
    if (http_outgoing_request_set_method(request, method, NULL, 0) ||
        http_outgoing_request_set_scheme(request, 1, url->scheme, NULL, 0) ||
        http_outgoing_request_set_authority(request, 1, url->authority, url->authority_len) ||
        http_outgoing_request_set_path_with_query(request, 1, url->path, url->path_len)) {
        fprintf(stderr, "the host rejected a part of the request URL\n");
        exit(1);
    }
    return request;
}

/* outgoing-handler.handle: consumes the request; returns the future, or fills *err. */
static inline int http_send(wasi_handle request, wasi_handle *future, http_error_code *err) {
    http_result_handle_error_code ret;
    http_outgoing_handler_handle(request, 0, 0, &ret);
    if (ret.is_err) {
        *err = ret.val.err;
        return -1;
    }
    *future = ret.val.ok;
    return 0;
}

/* future.get on a future whose pollable is ready: 1 with *response or *err set, 0 if the
 * host says it is not ready after all. The caller drops the future's pollable (its child),
 * then the future. */
static inline int http_future_take(wasi_handle future, wasi_handle *response, http_error_code *err,
                            int *failed) {
    http_future_get_result ret;
    http_future_incoming_response_get(future, &ret);
    if (!ret.is_some) return 0;
    if (ret.val.is_err) { /* "already taken": cannot happen, each future is read once */
        fprintf(stderr, "future-incoming-response.get: value already taken\n");
        exit(1);
    }
    *failed = ret.val.val.is_err;
    if (*failed) *err = ret.val.val.val.err;
    else *response = ret.val.val.val.ok;
    return 1;
}

/* Blocks on the future's pollable, then takes its value; returns 0 or -1 with *err. */
static inline int http_await(wasi_handle future, wasi_handle *response, http_error_code *err) {
    wasi_handle pollable = http_future_incoming_response_subscribe(future);
    wasi_pollable_block(pollable);
    int failed = 0;
    if (!http_future_take(future, response, err, &failed)) {
        fprintf(stderr, "future not ready after its pollable blocked\n");
        exit(1);
    }
    wasi_pollable_drop(pollable);
    http_future_incoming_response_drop(future);
    return failed ? -1 : 0;
}

/* Prints `header <name>: <value>` per entry, in the host's order (values are raw bytes). */
static inline void http_print_headers(wasi_handle response) {
    wasi_handle headers = http_incoming_response_headers(response);
    wasi_list entries;
    http_fields_entries(headers, &entries);
    const http_field_entry *e = entries.ptr;
    for (size_t i = 0; i < entries.len; i++) {
        fputs("header ", stdout);
        fwrite(e[i].name, 1, e[i].name_len, stdout);
        fputs(": ", stdout);
        fwrite(e[i].value, 1, e[i].value_len, stdout);
        fputc('\n', stdout);
        free(e[i].name);
        free(e[i].value);
    }
    free(entries.ptr);
    http_fields_drop(headers);
}

/* The stream error's cause as an error-code case name (dropping the io error). */
static inline const char *http_stream_error_name(const wasi_stream_error *e) {
    if (e->tag != STREAM_ERROR_LAST_OPERATION_FAILED) return "stream-closed";
    http_option_error_code code;
    http_error_code_of(e->error, &code);
    wasi_io_error_drop(e->error);
    return code.is_some ? http_error_code_name(&code.val) : "stream-error";
}

typedef struct {
    uint64_t bytes;
    uint64_t fnv1a64;
} http_body_summary;

/* Reads the response body with blocking-read until the stream reports closed. Each chunk goes
 * to stdout when `echo` is set; size and FNV-1a 64 are always computed. Consumes the response.
 * Returns NULL or the error-code case name of a failed read. */
static inline const char *http_read_body(wasi_handle response, int echo, http_body_summary *sum) {
    sum->bytes = 0;
    sum->fnv1a64 = 0xcbf29ce484222325ULL;
    wasi_result_handle r;
    http_incoming_response_consume(response, &r);
    if (r.is_err) return "body-already-consumed";
    wasi_handle body = r.ok;
    http_incoming_body_stream(body, &r);
    if (r.is_err) return "body-stream-already-taken";
    wasi_handle stream = r.ok;
    const char *failure = NULL;
    for (;;) { /* ends at the stream's end: the host reports closed after the last byte */
        wasi_result_bytes_stream_error chunk;
        wasi_input_stream_blocking_read(stream, BODY_READ_CHUNK, &chunk);
        if (chunk.is_err) {
            if (chunk.val.err.tag != STREAM_ERROR_CLOSED)
                failure = http_stream_error_name(&chunk.val.err);
            break;
        }
        const uint8_t *p = chunk.val.ok.ptr;
        for (size_t i = 0; i < chunk.val.ok.len; i++) {
            sum->fnv1a64 ^= p[i];
            sum->fnv1a64 *= 0x100000001b3ULL;
        }
        sum->bytes += chunk.val.ok.len;
        if (echo) fwrite(p, 1, chunk.val.ok.len, stdout);
        free(chunk.val.ok.ptr);
    }
    /* Children before parents: stream, then body, then response. */
    wasi_input_stream_drop(stream);
    http_incoming_body_drop(body);
    http_incoming_response_drop(response);
    return failure;
}

/* The single-request guests' output: status, headers, blank line, then body or summary. */
static inline void http_print_response(wasi_handle response, int summary) {
    printf("status %d\n", http_incoming_response_status(response));
    http_print_headers(response);
    fputc('\n', stdout);
    http_body_summary sum;
    const char *failure = http_read_body(response, !summary, &sum);
    if (failure) {
        if (!summary) fputc('\n', stdout); /* the error line after a partial body */
        http_fail(failure);
    }
    if (summary)
        printf("body_bytes %" PRIu64 " fnv1a64 %016" PRIx64 "\n", sum.bytes, sum.fnv1a64);
}

#endif

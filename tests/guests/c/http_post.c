/*
 * http_post URL
 * Reads all of stdin, then POSTs it to URL with `content-type: application/octet-stream` (and
 * its content-length), writing the outgoing body with blocking-write-and-flush in chunks of at
 * most 4096 bytes, then outgoing-body.finish. Prints the response like http_get: status,
 * headers, blank line, body bytes. A failed request prints `error <error-code case>`, exit 2.
 */
#include "wasi_http_client.h"

/* blocking-write-and-flush accepts at most 4096 bytes per call. */
#define BODY_WRITE_CHUNK 4096

static uint8_t *read_all_stdin(size_t *len) {
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) abort();
    for (;;) { /* ends at EOF: each pass reads > 0 bytes or stops */
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) abort();
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        if (got == 0) break;
        n += got;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "reading stdin failed\n");
        exit(1);
    }
    *len = n;
    return buf;
}

/* Writes the body and finishes it; returns NULL or the error-code case name of the failure. */
static const char *send_body(wasi_handle body, const uint8_t *data, size_t len) {
    wasi_result_handle r;
    http_outgoing_body_write(body, &r);
    if (r.is_err) return "body-stream-already-taken";
    wasi_handle stream = r.ok;
    const char *failure = NULL;
    for (size_t off = 0; off < len && !failure; off += BODY_WRITE_CHUNK) {
        size_t n = len - off < BODY_WRITE_CHUNK ? len - off : BODY_WRITE_CHUNK;
        wasi_result_unit_stream_error w;
        wasi_output_stream_blocking_write_and_flush(stream, data + off, n, &w);
        if (w.is_err) failure = http_stream_error_name(&w.err);
    }
    wasi_output_stream_drop(stream); /* the body's child: dropped before finish */
    http_result_unit_error_code fin;
    http_outgoing_body_finish(body, 0, 0, &fin);
    if (!failure && fin.is_err) failure = http_error_code_name(&fin.err);
    return failure;
}

int main(int argc, char **argv) {
    wasi_http_init();
    http_url url;
    if (argc != 2 || http_url_parse(argv[1], &url) != 0) {
        fprintf(stderr, "usage: http_post http(s)://host[:port][/path] < body\n");
        exit(1);
    }
    size_t len;
    uint8_t *data = read_all_stdin(&len);
    char length[24];
    snprintf(length, sizeof length, "%zu", len);

    wasi_handle headers = http_fields_new();
    http_fields_add(headers, "content-type", "application/octet-stream");
    http_fields_add(headers, "content-length", length);
    wasi_handle request = http_request_new(&url, HTTP_METHOD_POST, headers);
    wasi_result_handle body;
    http_outgoing_request_body(request, &body); /* taken before handle consumes the request */
    if (body.is_err) {
        fprintf(stderr, "outgoing-request.body failed\n");
        exit(1);
    }

    /* Send first, then stream the body: a host may not drain the body before handle. */
    wasi_handle future, response;
    http_error_code err;
    if (http_send(request, &future, &err) != 0) http_fail(http_error_code_name(&err));
    const char *failure = send_body(body.ok, data, len);
    if (failure) http_fail(failure);
    if (http_await(future, &response, &err) != 0) http_fail(http_error_code_name(&err));
    http_print_response(response, 0);
    fflush(stdout); /* see wasi_http_init */
    return 0;
}

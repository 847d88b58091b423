/*
 * http_get URL [--summary]
 * One GET through wasi:http/outgoing-handler. Prints `status <n>`, each response header as
 * `header <name>: <value>`, a blank line, then the body bytes exactly; with --summary, the
 * line `body_bytes <n> fnv1a64 <16 hex>` instead of the body. A failed request prints
 * `error <error-code case>` and exits 2.
 */
#include "wasi_http_client.h"

int main(int argc, char **argv) {
    wasi_http_init();
    int summary = argc == 3 && strcmp(argv[2], "--summary") == 0;
    http_url url;
    if ((argc != 2 && !summary) || http_url_parse(argv[1], &url) != 0) {
        fprintf(stderr, "usage: http_get http(s)://host[:port][/path] [--summary]\n");
        exit(1);
    }
    wasi_handle request = http_request_new(&url, HTTP_METHOD_GET, http_fields_new());
    wasi_handle future, response;
    http_error_code err;
    if (http_send(request, &future, &err) != 0 || http_await(future, &response, &err) != 0)
        http_fail(http_error_code_name(&err));
    http_print_response(response, summary);
    fflush(stdout); /* see wasi_http_init */
    return 0;
}

/*
 * http_headers URL [NAME=VALUE]...
 * One GET through wasi:http/outgoing-handler with the given request headers, printed like
 * http_get (status, response headers, blank line, body). In the URL and in a VALUE, `$VAR`
 * (to the end of the string) is replaced by the guest's environment variable VAR (empty when
 * unset): a secret comes from the environment, as real clients take their tokens.
 */
#include "wasi_http_client.h"

static const char *expand(const char *value, char *buf, size_t size) {
    const char *dollar = strchr(value, '$');
    if (!dollar) return value;
    const char *env = getenv(dollar + 1);
    snprintf(buf, size, "%.*s%s", (int)(dollar - value), value, env ? env : "");
    return buf;
}

int main(int argc, char **argv) {
    wasi_http_init();
    http_url url;
    char url_buf[4096];
    if (argc < 2 || http_url_parse(expand(argv[1], url_buf, sizeof url_buf), &url) != 0) {
        fprintf(stderr, "usage: http_headers http(s)://host[:port][/path] [NAME=VALUE]...\n");
        exit(1);
    }
    wasi_handle fields = http_fields_new();
    for (int i = 2; i < argc; i++) {
        char name[256], buf[4096];
        const char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof name) {
            fprintf(stderr, "http_headers: expected NAME=VALUE, got %s\n", argv[i]);
            exit(1);
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - argv[i]), argv[i]);
        http_fields_add(fields, name, expand(eq + 1, buf, sizeof buf));
    }
    wasi_handle request = http_request_new(&url, HTTP_METHOD_GET, fields);
    wasi_handle future, response;
    http_error_code err;
    if (http_send(request, &future, &err) != 0 || http_await(future, &response, &err) != 0)
        http_fail(http_error_code_name(&err));
    http_print_response(response, 0);
    fflush(stdout); /* see wasi_http_init */
    return 0;
}

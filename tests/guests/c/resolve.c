/*
 * resolve NAME...
 * Looks each NAME up through wasi:sockets/ip-name-lookup and prints one line per address in the
 * host's order, `<name> <ip>`, or `<name> error <error-code case>` (no lookup grant:
 * `permanent-resolver-failure`, for IP literals too). Exits 1 if any lookup failed.
 */
#include "sock_common.h"

int main(int argc, char **argv) {
    wasi_sockets_init();
    if (argc < 2) sock_usage("resolve NAME...");
    wasi_handle net = sock_instance_network();
    int failures = 0;
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        sock_result_handle started;
        sock_resolve_addresses(net, name, strlen(name), &started);
        if (started.is_err) {
            printf("%s error %s\n", name, sock_error_name(started.val.err));
            failures++;
            continue;
        }
        wasi_handle stream = started.val.ok;
        for (;;) {
            sock_result_next_ip next;
            SOCK_AWAIT(sock_resolve_subscribe(stream), sock_resolve_next_address(stream, &next), next);
            if (next.is_err) {
                printf("%s error %s\n", name, sock_error_name(next.val.err));
                failures++;
                break;
            }
            if (!next.val.ok.is_some) break;
            char ip[INET6_ADDRSTRLEN];
            const sock_ip *a = &next.val.ok.ip;
            printf("%s %s\n", name, sock_ip_text(a->family, a->u.v4, a->u.v6, ip));
        }
        sock_resolve_stream_drop(stream);
    }
    fflush(stdout);
    return failures ? 1 : 0;
}

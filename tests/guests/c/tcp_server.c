/*
 * tcp_server IP PORT
 * Binds IP:PORT through wasi:sockets/tcp, listens and prints `listening <local address>` (flushed,
 * so a test can connect once it reads it). Accepts one connection: `accepted <peer ip>` (the peer's
 * port varies), reads one line: `received <line>`, answers `echo <line>\n`, shuts the connection
 * down and prints `done`. A failed call prints `<step> error <error-code case>` and exits 1.
 */
#include "sock_common.h"

int main(int argc, char **argv) {
    wasi_sockets_init();
    sock_address local;
    if (argc != 3 || sock_parse(argv[1], argv[2], &local) != 0) sock_usage("tcp_server IP PORT");

    wasi_handle net = sock_instance_network();
    sock_result_handle created;
    sock_create_tcp_socket(local.family, &created);
    if (created.is_err) sock_fail("socket", created.val.err);
    wasi_handle listener = created.val.ok;

    sock_flat_address flat = sock_flatten(&local);
    sock_result_unit r;
    sock_tcp_start_bind(listener, net, SOCK_FLAT_ARGS(flat), &r);
    if (r.is_err) sock_fail("bind", r.val.err);
    SOCK_AWAIT(sock_tcp_subscribe(listener), sock_tcp_finish_bind(listener, &r), r);
    if (r.is_err) sock_fail("bind", r.val.err);
    sock_tcp_start_listen(listener, &r);
    if (r.is_err) sock_fail("listen", r.val.err);
    SOCK_AWAIT(sock_tcp_subscribe(listener), sock_tcp_finish_listen(listener, &r), r);
    if (r.is_err) sock_fail("listen", r.val.err);

    char text[SOCK_ADDRESS_TEXT_MAX], ip[INET6_ADDRSTRLEN];
    sock_result_address a;
    sock_tcp_local_address(listener, &a);
    if (a.is_err) sock_fail("local-address", a.val.err);
    printf("listening %s\n", sock_address_text(&a.val.ok, text));
    fflush(stdout);

    sock_result_accept acc;
    SOCK_AWAIT(sock_tcp_subscribe(listener), sock_tcp_accept(listener, &acc), acc);
    if (acc.is_err) sock_fail("accept", acc.val.err);
    sock_tcp_conn c = {acc.val.ok.socket, acc.val.ok.in, acc.val.ok.out};
    sock_tcp_remote_address(c.socket, &a);
    if (a.is_err) sock_fail("remote-address", a.val.err);
    printf("accepted %s\n", sock_address_ip(&a.val.ok, ip));

    static char line[SOCK_READ_CHUNK];
    long n = sock_read_line(c.in, line, sizeof line - 8);
    if (n < 0) {
        printf("received EOF\n");
    } else {
        printf("received %s\n", line);
        char *answer = malloc((size_t)n + 7);
        if (!answer) abort();
        int len = sprintf(answer, "echo %s\n", line);
        if (sock_write_all(c.out, (const uint8_t *)answer, (size_t)len) != 0) printf("write closed\n");
        free(answer);
    }
    sock_tcp_shutdown(c.socket, SOCK_SHUTDOWN_BOTH, &r);
    if (r.is_err) sock_fail("shutdown", r.val.err);
    printf("done\n");
    fflush(stdout);
    return 0;
}

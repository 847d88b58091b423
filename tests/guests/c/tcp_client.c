/*
 * tcp_client IP PORT [line TEXT | rounds N | bulk BYTES]
 * Connects to IP:PORT (IPv4 or IPv6 literal) through wasi:sockets/tcp and prints
 * `connected <remote address>` and `local <local ip>` (the implicit bind's port varies, so only
 * its address is shown). Then, by mode (default `line hello`):
 *   line TEXT   sends TEXT and '\n', reads one line back: `reply <line>` (`reply EOF` if none);
 *   rounds N    N round trips of `round <i>\n`, each awaiting its echo: `rounds <N> ok`;
 *   bulk BYTES  streams BYTES bytes (byte i is i % 251) with non-blocking writes, reading the echo
 *               as it comes, then shuts down sending and reads to the end:
 *               `bulk sent <n> received <n> fnv1a64 <16 hex of what came back>`.
 * Ends with `closed`. A failed call prints `<step> error <error-code case>` and exits 1
 * (a refused port: `connect error connection-refused`; no grant: `socket error access-denied`
 * or `connect error access-denied`).
 */
#include "sock_common.h"

static sock_tcp_conn tcp_connect(const sock_address *remote) {
    wasi_handle net = sock_instance_network();
    sock_result_handle created;
    sock_create_tcp_socket(remote->family, &created);
    if (created.is_err) sock_fail("socket", created.val.err);
    sock_tcp_conn c = {.socket = created.val.ok};
    sock_flat_address flat = sock_flatten(remote);
    sock_result_unit started;
    sock_tcp_start_connect(c.socket, net, SOCK_FLAT_ARGS(flat), &started);
    if (started.is_err) sock_fail("connect", started.val.err);
    sock_result_pair done;
    SOCK_AWAIT(sock_tcp_subscribe(c.socket), sock_tcp_finish_connect(c.socket, &done), done);
    if (done.is_err) sock_fail("connect", done.val.err);
    c.in = done.val.ok.in;
    c.out = done.val.ok.out;
    sock_network_drop(net);
    return c;
}

static void print_addresses(wasi_handle socket) {
    char text[SOCK_ADDRESS_TEXT_MAX], ip[INET6_ADDRSTRLEN];
    sock_result_address a;
    sock_tcp_remote_address(socket, &a);
    if (a.is_err) sock_fail("remote-address", a.val.err);
    printf("connected %s\n", sock_address_text(&a.val.ok, text));
    sock_tcp_local_address(socket, &a);
    if (a.is_err) sock_fail("local-address", a.val.err);
    printf("local %s\n", sock_address_ip(&a.val.ok, ip));
}

static void send_line(sock_tcp_conn *c, const char *text) {
    size_t n = strlen(text);
    char *line = malloc(n + 1);
    if (!line) abort();
    memcpy(line, text, n);
    line[n] = '\n';
    if (sock_write_all(c->out, (const uint8_t *)line, n + 1) != 0) {
        printf("write closed\n");
        fflush(stdout);
        exit(1);
    }
    free(line);
}

static void mode_line(sock_tcp_conn *c, const char *text) {
    static char reply[SOCK_READ_CHUNK];
    send_line(c, text);
    long n = sock_read_line(c->in, reply, sizeof reply);
    if (n < 0) printf("reply EOF\n");
    else printf("reply %s\n", reply);
}

static void mode_rounds(sock_tcp_conn *c, long rounds) {
    char want[32], got[64];
    for (long i = 0; i < rounds; i++) {
        snprintf(want, sizeof want, "round %ld", i);
        send_line(c, want);
        long n = sock_read_line(c->in, got, sizeof got);
        if (n < 0 || strcmp(got, want) != 0) {
            printf("round %ld got %s\n", i, n < 0 ? "EOF" : got);
            fflush(stdout);
            exit(1);
        }
    }
    printf("rounds %ld ok\n", rounds);
}

/* Consumes what `read` has now; returns -1 at end of stream. */
static long drain(wasi_handle in, uint64_t *hash, uint64_t *received) {
    wasi_result_bytes_stream_error r;
    wasi_input_stream_read(in, SOCK_READ_CHUNK, &r);
    if (r.is_err) {
        sock_drop_stream_error(&r.val.err);
        return -1;
    }
    *hash = fnv1a64_update(*hash, r.val.ok.ptr, r.val.ok.len);
    *received += r.val.ok.len;
    wasi_list_free(r.val.ok.ptr, r.val.ok.len);
    return (long)r.val.ok.len;
}

static void mode_bulk(sock_tcp_conn *c, uint64_t total) {
    static uint8_t chunk[SOCK_READ_CHUNK + 251];
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (uint8_t)(i % 251);
    uint64_t sent = 0, received = 0, hash = FNV1A64_INIT;
    wasi_handle pollables[2] = {wasi_input_stream_subscribe(c->in), wasi_output_stream_subscribe(c->out)};
    int eof = 0;
    while (sent < total) {
        wasi_result_u64_stream_error can;
        wasi_output_stream_check_write(c->out, &can);
        if (can.is_err) {
            printf("write closed after %" PRIu64 "\n", sent);
            fflush(stdout);
            exit(1);
        }
        uint64_t n = total - sent;
        if (n > can.val.ok) n = can.val.ok;
        if (n > SOCK_READ_CHUNK) n = SOCK_READ_CHUNK;
        if (n) {
            wasi_result_unit_stream_error w;
            wasi_output_stream_write(c->out, chunk + sent % 251, (size_t)n, &w);
            if (w.is_err) {
                printf("write closed after %" PRIu64 "\n", sent);
                fflush(stdout);
                exit(1);
            }
            sent += n;
        }
        long got = eof ? 0 : drain(c->in, &hash, &received);
        if (got < 0) eof = 1;
        if (!n && got <= 0) {
            wasi_list ready; /* wait for room to write or bytes to read (only room once in has ended) */
            wasi_io_poll(eof ? &pollables[1] : pollables, eof ? 1 : 2, &ready);
            wasi_list_free(ready.ptr, ready.len);
        }
    }
    wasi_result_unit_stream_error f;
    wasi_output_stream_blocking_flush(c->out, &f);
    if (f.is_err) sock_drop_stream_error(&f.err);
    sock_result_unit s;
    sock_tcp_shutdown(c->socket, SOCK_SHUTDOWN_SEND, &s);
    if (s.is_err) sock_fail("shutdown", s.val.err);
    while (!eof) {
        wasi_result_bytes_stream_error r;
        wasi_input_stream_blocking_read(c->in, SOCK_READ_CHUNK, &r);
        if (r.is_err) {
            sock_drop_stream_error(&r.val.err);
            break;
        }
        hash = fnv1a64_update(hash, r.val.ok.ptr, r.val.ok.len);
        received += r.val.ok.len;
        wasi_list_free(r.val.ok.ptr, r.val.ok.len);
    }
    printf("bulk sent %" PRIu64 " received %" PRIu64 " fnv1a64 %016" PRIx64 "\n", sent, received, hash);
}

int main(int argc, char **argv) {
    wasi_sockets_init();
    const char *usage = "tcp_client IP PORT [line TEXT | rounds N | bulk BYTES]";
    sock_address remote;
    if ((argc != 3 && argc != 5) || sock_parse(argv[1], argv[2], &remote) != 0) sock_usage(usage);
    const char *mode = argc == 5 ? argv[3] : "line";
    const char *arg = argc == 5 ? argv[4] : "hello";
    char *end;
    long long number = strtoll(arg, &end, 10);
    if (strcmp(mode, "line") != 0 && (*end || number < 0)) sock_usage(usage);

    sock_tcp_conn c = tcp_connect(&remote);
    print_addresses(c.socket);
    if (strcmp(mode, "line") == 0) mode_line(&c, arg);
    else if (strcmp(mode, "rounds") == 0) mode_rounds(&c, (long)number);
    else if (strcmp(mode, "bulk") == 0) mode_bulk(&c, (uint64_t)number);
    else sock_usage(usage);
    printf("closed\n");
    fflush(stdout);
    return 0;
}

/*
 * udp_client IP PORT TEXT [TIMEOUT_MS=2000]
 * Binds an unspecified local address of IP's family (port 0, as libc's implicit bind does), opens a
 * datagram stream connected to IP:PORT through wasi:sockets/udp, sends TEXT as one datagram:
 * `sent <n> bytes`, then waits for one datagram at most TIMEOUT_MS (wasi:io/poll over the incoming
 * stream and a monotonic-clock timer): `reply <data> from <address>`, or `timeout`.
 * A failed call prints `<step> error <error-code case>` and exits 1 (a closed port on loopback:
 * `receive error connection-refused`, from the ICMP answer to the connected socket).
 */
#include "sock_common.h"

int main(int argc, char **argv) {
    wasi_sockets_init();
    const char *usage = "udp_client IP PORT TEXT [TIMEOUT_MS]";
    sock_address remote;
    if ((argc != 4 && argc != 5) || sock_parse(argv[1], argv[2], &remote) != 0) sock_usage(usage);
    char *end;
    unsigned long timeout_ms = argc == 5 ? strtoul(argv[4], &end, 10) : 2000;
    if (argc == 5 && *end) sock_usage(usage);

    wasi_handle net = sock_instance_network();
    sock_result_handle created;
    sock_create_udp_socket(remote.family, &created);
    if (created.is_err) sock_fail("socket", created.val.err);
    wasi_handle udp = created.val.ok;

    sock_address any = sock_any(remote.family);
    sock_flat_address flat = sock_flatten(&any);
    sock_result_unit r;
    sock_udp_start_bind(udp, net, SOCK_FLAT_ARGS(flat), &r);
    if (r.is_err) sock_fail("bind", r.val.err);
    SOCK_AWAIT(sock_udp_subscribe(udp), sock_udp_finish_bind(udp, &r), r);
    if (r.is_err) sock_fail("bind", r.val.err);

    flat = sock_flatten(&remote);
    sock_result_pair streams;
    sock_udp_stream(udp, 1, SOCK_FLAT_ARGS(flat), &streams);
    if (streams.is_err) sock_fail("stream", streams.val.err);
    wasi_handle incoming = streams.val.ok.in, outgoing = streams.val.ok.out;

    sock_result_u64 can;
    sock_udp_check_send(outgoing, &can);
    if (!can.is_err && can.val.ok == 0) {
        wasi_handle p = sock_udp_outgoing_subscribe(outgoing);
        wasi_pollable_block(p);
        wasi_pollable_drop(p);
        sock_udp_check_send(outgoing, &can);
    }
    if (can.is_err) sock_fail("send", can.val.err);
    sock_outgoing_datagram d = {.data = (const uint8_t *)argv[3], .len = strlen(argv[3]), .has_remote = 0};
    sock_result_u64 sent;
    sock_udp_send(outgoing, &d, 1, &sent);
    if (sent.is_err) sock_fail("send", sent.val.err);
    printf("sent %zu bytes\n", sent.val.ok == 1 ? d.len : (size_t)0);

    wasi_handle pollables[2] = {sock_udp_incoming_subscribe(incoming),
                                wasi_monotonic_subscribe_duration((uint64_t)timeout_ms * 1000000u)};
    for (;;) {
        sock_result_datagrams got;
        sock_udp_receive(incoming, 1, &got);
        if (got.is_err) sock_fail("receive", got.val.err);
        if (got.val.ok.len) {
            char text[SOCK_ADDRESS_TEXT_MAX];
            sock_incoming_datagram *g = got.val.ok.ptr;
            printf("reply %.*s from %s\n", (int)g->len, (const char *)g->data, sock_address_text(&g->remote, text));
            break;
        }
        wasi_list ready;
        wasi_io_poll(pollables, 2, &ready);
        int timer_fired = 0;
        for (size_t i = 0; i < ready.len; i++) timer_fired |= ((uint32_t *)ready.ptr)[i] == 1;
        wasi_list_free(ready.ptr, ready.len);
        if (timer_fired) {
            printf("timeout\n");
            break;
        }
    }
    fflush(stdout);
    return 0;
}

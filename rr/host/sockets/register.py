"""Importing this registers every wasi:sockets function rr serves (see wit.LAZY)."""

from . import ip_name_lookup, network, tcp, tcp_create_socket, udp, udp_create_socket  # noqa: F401  (registration)

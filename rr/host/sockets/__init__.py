"""wasi:sockets — TCP, UDP and name lookup, granted like the wasmtime CLI, recorded and replayed.

  grant.py              -S inherit-network / allow-ip-name-lookup / tcp / udp and --allow-net
  network.py            error codes, addresses, the network resource, instance-network
  connect.py            the one place a live outgoing TCP connection is opened
  tcp_create_socket.py  tcp.py  udp_create_socket.py  udp.py  ip_name_lookup.py
"""

from . import refused  # noqa: F401  (registration side effects)

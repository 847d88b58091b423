"""wasi:sockets — TCP, UDP and name lookup, granted like the wasmtime CLI, recorded and replayed.

  grant.py              -S inherit-network / allow-ip-name-lookup / tcp / udp and --allow-net
  network.py            error codes, addresses, the network resource, instance-network
  connect.py            the one place a live outgoing TCP connection is opened
  streams.py            a connected TCP socket's wasi:io streams
  tcp_create_socket.py  tcp.py  udp_create_socket.py  udp.py  ip_name_lookup.py

Every answer a guest gets goes through the tap (rr/tap.py): a replay opens no socket and
serves everything from the trace. Sockets, streams and lookups are named in the trace by
labels given in creation order (tcp-1, tcp-1-in, udp-2-out, lookup-1), the same on every run.

Importing the package registers nothing (the CLI needs only grant.py); `register` does, when
a component imports wasi:sockets (see wit.LAZY): a guest without sockets does not pay for them.
"""

"""``python -m taskfleet_api``'s listening socket: TCP by protocol number, shareable between server processes."""

from __future__ import annotations

import socket

from taskfleet_api.__main__ import MAX_DEFAULT_WORKERS, bind, default_workers


def test_each_server_binds_a_tcp_socket_the_others_can_bind_too() -> None:
    first = bind("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        second = bind("127.0.0.1", port)  # SO_REUSEPORT: another server process on the same port
        second.close()
        # asyncio sets TCP_NODELAY on accepted connections only when the listening socket says IPPROTO_TCP
        assert first.proto == socket.IPPROTO_TCP
        assert first.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    finally:
        first.close()


def test_the_default_number_of_servers_is_bounded() -> None:
    assert 1 <= default_workers() <= MAX_DEFAULT_WORKERS

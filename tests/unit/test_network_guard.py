"""The suite itself may only reach loopback: the guard in tests/conftest.py refuses anything else."""

import socket

import pytest


@pytest.mark.parametrize("host", ["10.1.2.3", "192.168.0.1", "93.184.216.34"])
def test_connections_beyond_loopback_are_refused(host):
    with pytest.raises(OSError, match="loopback"):
        socket.create_connection((host, 80), timeout=0.1)


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=1).close()

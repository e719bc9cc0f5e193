"""Waiting for a cluster's lower processes to listen before connecting (`obsync.runtime.peer_listening`)."""

from __future__ import annotations

import socket

from obsync.runtime.peer_listening import listening_ports, local_ports, wait_until_listening

# /proc/net/tcp as Linux writes it: 127.0.0.1:8080 listening, 127.0.0.1:9090 connected, 0.0.0.0:22 listening
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:2382 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
"""


def test_the_listening_ports_are_read_from_the_kernels_table():
    assert listening_ports([TCP]) == {8080, 22}
    assert listening_ports(["  sl  local_address rem_address   st\n"]) == set()


def test_only_this_hosts_loopback_addresses_are_waited_for():
    assert local_ports(["127.0.0.1:8080", " localhost:9090", "[::1]:7070", "10.0.0.5:8080", "pod-0.svc:8080"]) == {
        8080, 9090, 7070}


def test_waiting_ends_when_the_peer_listens_and_not_before():
    calls = []

    def read():
        calls.append(1)
        return [TCP] if len(calls) >= 3 else [TCP.replace(" 0A ", " 07 ", 1)]  # 8080 listens from the 3rd look

    assert wait_until_listening(["127.0.0.1:8080"], 5.0, lambda: False, read, interval=0.001)
    assert len(calls) == 3


def test_waiting_is_bounded_and_gives_way_to_a_stop():
    never = [TCP.replace(" 0A ", " 07 ", 1)]
    assert not wait_until_listening(["127.0.0.1:8080"], 0.05, lambda: False, lambda: never, interval=0.001)
    assert not wait_until_listening(["127.0.0.1:8080"], 60.0, lambda: True, lambda: never, interval=0.001)
    assert not wait_until_listening(["127.0.0.1:8080"], 60.0, lambda: False, lambda: [], interval=0.001)
    assert wait_until_listening(["10.0.0.5:8080"], 60.0, lambda: False, lambda: never)  # another host's: no wait


def test_a_real_listening_socket_is_seen():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert not wait_until_listening([f"127.0.0.1:{port}"], 0.1, lambda: False)
        s.listen()
        assert wait_until_listening([f"127.0.0.1:{port}"], 5.0, lambda: False)

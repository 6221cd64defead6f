"""sd_notify(3) over NOTIFY_SOCKET, in Python: readiness, status, watchdog."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from twisted.internet.task import Clock

from shenava.sd_notify import Notifier


def _listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def _received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_ready_status_and_stopping_are_datagrams(tmp_path: Path) -> None:
    sock = _listen(tmp_path / "notify")
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert notifier.ready("AMI 127.0.0.1:5038: connecting")
    assert notifier.status("AMI 127.0.0.1:5038: connected")
    assert notifier.stopping()
    assert _received(sock) == [
        "READY=1\nSTATUS=AMI 127.0.0.1:5038: connecting",
        "STATUS=AMI 127.0.0.1:5038: connected",
        "STOPPING=1",
    ]


def test_the_watchdog_pings_at_half_its_interval_from_the_clock(tmp_path: Path) -> None:
    sock = _listen(tmp_path / "notify")
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "30000000",
           "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier(env)
    assert notifier.watchdog_s == 30.0
    clock = Clock()
    notifier.start_watchdog(clock)
    clock.advance(14.9)
    assert _received(sock) == ["WATCHDOG=1"]
    clock.advance(0.1)
    clock.advance(15.0)
    assert _received(sock) == ["WATCHDOG=1", "WATCHDOG=1"]
    notifier.stopping()
    clock.advance(60.0)
    assert _received(sock) == ["STOPPING=1"]


def test_a_watchdog_meant_for_another_process_is_ignored() -> None:
    env = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    assert Notifier(env).watchdog_s is None or os.getpid() == 1


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    clock = Clock()
    notifier.start_watchdog(clock)
    assert clock.getDelayedCalls() == []


def test_an_abstract_socket_name(tmp_path: Path) -> None:
    name = f"shenava-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
    assert _received(sock) == ["READY=1"]


def test_a_missing_socket_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    from twisted.logger import LogLevel, globalLogPublisher

    seen: list[dict[str, object]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready()
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert [e["log_level"] for e in seen if "path" in e] == [LogLevel.warn]

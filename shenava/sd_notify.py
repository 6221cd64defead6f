"""systemd's readiness and watchdog protocol (sd_notify(3)), without libsystemd.

A ``Type=notify`` unit gives the service ``NOTIFY_SOCKET``: a Unix datagram
socket (a path, or ``@name`` in the abstract namespace) to which it sends
``READY=1`` once it serves, ``STATUS=...`` lines for ``systemctl status``,
``STOPPING=1`` when it stops, and ``WATCHDOG=1`` at least every
``WATCHDOG_USEC`` microseconds when the unit has ``WatchdogSec=``; a daemon
that stops sending is killed and restarted. Outside systemd every call is a
no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()


def _address(value: str) -> str | bytes:
    # "@name" is the abstract namespace: a leading NUL byte.
    return b"\0" + value[1:].encode() if value.startswith("@") else value


class Notifier:
    """Sends sd_notify datagrams to ``NOTIFY_SOCKET`` (nothing when it is not set)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.socket_path = env.get("NOTIFY_SOCKET") or None
        self.watchdog_s = _watchdog_interval(env)
        self._loop: LoopingCall | None = None

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=value`` lines; False (and a warning) if it failed."""
        if self.socket_path is None:
            return False
        payload = "\n".join(lines).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)  # on the reactor thread: never wait for systemd
                sock.connect(_address(self.socket_path))
                sock.send(payload)
        except OSError as exc:
            log.warn("sd_notify to {path} failed: {error}", path=self.socket_path, error=str(exc))
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        self.stop_watchdog()
        return self.send("STOPPING=1")

    def start_watchdog(self, clock: Any) -> None:
        """Ping the watchdog at half its interval from the reactor: a stuck reactor stops pinging."""
        if self.socket_path is None or self.watchdog_s is None or self._loop is not None:
            return
        loop = LoopingCall(self.send, "WATCHDOG=1")
        loop.clock = clock
        self._loop = loop
        loop.start(self.watchdog_s / 2.0, now=True)

    def stop_watchdog(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds from ``WATCHDOG_USEC``, if it is meant for this process (``WATCHDOG_PID``)."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None

"""A real ``redis-server`` child process on loopback, for tests and the demo.

It runs with AOF on (``appendonly yes``) in a given folder, so state survives a
stop and start on the same folder, exactly as the operator's Redis would keep
it. Starting blocks until the server answers PING (bounded): call it before
the reactor runs, as the test fixtures and ``shenava demo`` do.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
PING_INTERVAL_S = 0.02
PORT_ATTEMPTS = 5
LOG_FILE_NAME = "redis-server.log"


class RedisServerError(RuntimeError):
    """redis-server could not be started."""

    code = "redis.server_failed"


class RedisServerMissingError(RedisServerError):
    """The redis-server program is not installed."""

    code = "redis.server_missing"


class RedisServer:
    """A running redis-server child; ``stop()`` terminates it and waits."""

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, data_dir: Path, *, owns_dir: bool
    ) -> None:
        self.process = process
        self.port = port
        self.data_dir = data_dir
        self._owns_dir = owns_dir

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (Redis flushes the AOF and exits), then wait; kill if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} dir={self.data_dir} pid={self.process.pid}>"


def find_redis_server(executable: str = "redis-server") -> str:
    found = shutil.which(executable)
    if found is None:
        raise RedisServerMissingError(
            f"{executable} is not installed (on Debian/Ubuntu: apt-get install redis-server)"
        )
    return found


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the caller retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ping(port: int, timeout_s: float = 0.5) -> bool:
    """True if a Redis on loopback ``port`` answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def info_field(port: int, section: str, field: str, timeout_s: float = 0.5) -> bytes | None:
    """One ``field`` of ``INFO section`` from the Redis on loopback ``port`` (None: no answer)."""
    key = field.encode() + b":"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"INFO " + section.encode() + b"\r\n")
            reply = b""
            while key not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk or len(reply) > 65536:
                    break
                reply += chunk
    except OSError:
        return None
    for line in reply.split(b"\r\n"):
        if line.startswith(key):
            return line[len(key):]
    return None


def server_pid(port: int, timeout_s: float = 0.5) -> int | None:
    """The process id of the Redis answering on loopback ``port`` (``INFO server``).

    Checking the pid, not just PING, tells our child from another server that
    already held the port.
    """
    pid = info_field(port, "server", "process_id", timeout_s)
    return int(pid) if pid is not None else None


def loaded(port: int, timeout_s: float = 0.5) -> bool:
    """True once the Redis on loopback ``port`` has loaded its data (``INFO persistence``'s
    ``loading:0``). It answers INFO while it reads its AOF, but every other command
    gets ``LOADING`` until then: a server restarted on a big file is not ready yet."""
    return info_field(port, "persistence", "loading", timeout_s) == b"0"


def start_redis_server(
    data_dir: Path | None = None,
    *,
    port: int | None = None,
    executable: str = "redis-server",
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    extra_args: Sequence[str] = (),
) -> RedisServer:
    """Start redis-server on 127.0.0.1 with AOF in ``data_dir`` (a temporary folder if None).

    A temporary folder is removed by ``stop()``; a given one is kept, so a
    second start on it finds the data again.
    """
    program = find_redis_server(executable)
    owns_dir = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="shenava-redis-")) if data_dir is None else data_dir
    folder.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for _attempt in range(1 if port is not None else PORT_ATTEMPTS):
        chosen = port if port is not None else free_port()
        process = _spawn(program, folder, chosen, extra_args)
        attempt = RedisServer(process, chosen, folder, owns_dir=False)
        problem = _wait_until_ready(attempt, startup_timeout_s)
        if problem is None:
            return RedisServer(process, chosen, folder, owns_dir=owns_dir)
        attempt.stop()
        errors.append(problem)
        if "Address already in use" not in problem:
            break
    if owns_dir:
        shutil.rmtree(folder, ignore_errors=True)
    raise RedisServerError(f"redis-server did not start in {folder}: {errors[-1]}")


def _spawn(program: str, folder: Path, port: int, extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    args = [
        program,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--daemonize", "no",
        "--appendonly", "yes",
        "--save", "",
        "--dir", str(folder),
        "--logfile", str(folder / LOG_FILE_NAME),
        "--protected-mode", "yes",
        *extra,
    ]
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait_until_ready(server: RedisServer, timeout_s: float, *, holds_data: bool = True) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return f"exited with code {server.process.returncode}: {_log_tail(server.data_dir)}"
        pid = server_pid(server.port)
        if pid == server.process.pid and (not holds_data or loaded(server.port)):
            return None
        time.sleep(PING_INTERVAL_S)
    return f"no answer to PING within {timeout_s:g} s: {_log_tail(server.data_dir)}"


def _log_tail(folder: Path, lines: int = 5) -> str:
    try:
        text = (folder / LOG_FILE_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) if tail else "(empty log)"


def start_redis_sentinel(
    folder: Path,
    master_port: int,
    *,
    service: str = "mymaster",
    quorum: int = 2,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 5000,
    executable: str = "redis-sentinel",
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> RedisServer:
    """A ``redis-sentinel`` on 127.0.0.1 watching the master on loopback ``master_port``
    (tests of Sentinel failover; Debian's redis-sentinel package)."""
    program = find_redis_server(executable)
    folder.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for _attempt in range(PORT_ATTEMPTS):
        port = free_port()
        conf = folder / "sentinel.conf"  # sentinel rewrites its own config: give it a file
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {folder}\n"
            f"logfile {folder / LOG_FILE_NAME}\n"
            f"sentinel monitor {service} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
            f"sentinel failover-timeout {service} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {service} 1\n",
            encoding="utf-8",
        )
        process = subprocess.Popen(
            [program, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sentinel = RedisServer(process, port, folder, owns_dir=False)
        problem = _wait_until_ready(sentinel, startup_timeout_s, holds_data=False)  # no data set
        if problem is None:
            return sentinel
        sentinel.stop()
        errors.append(problem)
        if "Address already in use" not in problem:
            break
    raise RedisServerError(f"redis-sentinel did not start in {folder}: {errors[-1]}")

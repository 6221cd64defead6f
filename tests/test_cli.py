"""The ``shenava`` command itself: extras, exit codes, output."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from shenava.cli import EXIT_MISSING, missing_extra

ROOT = Path(__file__).resolve().parent.parent


def test_worker_and_transcribe_name_the_extra_when_vosk_is_missing() -> None:
    for command in ("worker", "transcribe"):
        message = missing_extra(command, installed=lambda module: module != "vosk")
        assert message is not None
        assert "shenava[transcribe]" in message
        assert f"shenava {command}" in message


def test_other_commands_need_no_extra() -> None:
    for command in ("run", "demo", "report", "complaints", "models"):
        assert missing_extra(command, installed=lambda module: False) is None
    assert missing_extra("worker", installed=lambda module: True) is None
    assert EXIT_MISSING == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_complaints_list_with_redis_down_is_one_line_and_exit_3() -> None:
    # A port nobody listens on: the README promises 3 and no traceback.
    url = f"redis://127.0.0.1:{_free_port()}/0"
    done = subprocess.run(
        [sys.executable, "-m", "shenava.cli", "complaints", "--redis-url", url, "list"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("shenava complaints: Redis is unreachable")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    script = (
        "import sys\n"
        "import shenava.cli as cli\n"
        "def flood(args):\n"
        "    for i in range(10**6):\n"
        "        print('line', i)\n"
        "    return 0\n"
        "cli._cmd_bench = flood\n"
        "sys.exit(cli.main(['bench']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"line 0")
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert err == ""


def test_an_unexpected_error_is_one_line_and_exit_1() -> None:
    script = (
        "import sys\n"
        "import shenava.cli as cli\n"
        "def broken(args):\n"
        "    raise RuntimeError('something odd')\n"
        "cli._cmd_bench = broken\n"
        "sys.exit(cli.main(['bench']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr == "shenava bench: unexpected error: RuntimeError: something odd\n"

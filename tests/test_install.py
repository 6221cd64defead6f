"""The shipped systemd units, and the README's install section followed step by step.

``systemd-analyze verify`` checks the units' syntax, every key and the
``ExecStart`` binary (so the test points it at a real ``shenava``). The install
test does what the README says under a temporary root instead of ``/``: a venv
in ``<root>/opt/shenava`` with Shenava installed from this checkout, the config
in ``<root>/etc/shenava`` with the AMI secret in a file, ``shenava
check-config``, then ``shenava run`` started with the unit's own ``ExecStart``
line and the environment systemd gives a ``Type=notify`` service
(``NOTIFY_SOCKET``, ``WATCHDOG_USEC``, ``JOURNAL_STREAM``), against ``shenava
testpbx`` and the tests' real Redis. What needs root on a real machine (the
``shenava`` user, ``chown``, systemd itself) is not done here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "etc" / "systemd"
SHIPPED_PREFIX = "/opt/shenava"
SECRET = "install-test-secret"
WAIT_S = 60.0
"""A bound on each wait for the daemon (a hung test fails instead of hanging)."""


def _analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed (scripts/bootstrap installs Debian's systemd)")
    return path


def _units_pointing_at(shenava: Path, folder: Path) -> list[Path]:
    """The shipped units with ``ExecStart`` pointing at ``shenava`` (verify checks it exists)."""
    out = []
    for unit in sorted(UNITS.glob("*.service")):
        text = unit.read_text(encoding="utf-8").replace(f"{SHIPPED_PREFIX}/bin/shenava", str(shenava))
        target = folder / unit.name
        target.write_text(text, encoding="utf-8")
        out.append(target)
    return out


def test_the_shipped_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _analyze()
    units = _units_pointing_at(Path(sys.executable).with_name("shenava"), tmp_path)
    assert [u.name for u in units] == ["shenava-worker@.service", "shenava.service"]
    done = subprocess.run([analyze, "verify", *map(str, units)], capture_output=True, text=True,
                          timeout=WAIT_S)
    # Unknown keys are only warnings (exit 0): any output is a finding.
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_verify_finds_a_mistake(tmp_path: Path) -> None:
    analyze = _analyze()
    units = _units_pointing_at(Path(sys.executable).with_name("shenava"), tmp_path)
    service = units[1]
    service.write_text(service.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    done = subprocess.run([analyze, "verify", str(service)], capture_output=True, text=True,
                          timeout=WAIT_S)
    assert "NoNewPrivilege" in done.stderr


def test_the_service_unit_is_hardened_and_notifies() -> None:
    text = (UNITS / "shenava.service").read_text(encoding="utf-8")
    for line in ("Type=notify", "WatchdogSec=30s", "User=shenava", "ProtectSystem=strict",
                 "NoNewPrivileges=true", "PrivateTmp=true", "LimitNOFILE=65536",
                 "ReadWritePaths=/var/lib/shenava /var/spool/shenava"):
        assert line in text.splitlines(), line


# -- the README's install section ------------------------------------------------------


def _exec_start(unit: str) -> list[str]:
    for line in (UNITS / unit).read_text(encoding="utf-8").splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    raise AssertionError(f"no ExecStart in {unit}")


def _rooted(argv: list[str], root: Path) -> list[str]:
    """The unit's command with /opt/shenava and /etc/shenava under ``root``."""
    return [str(root) + arg if arg.startswith(("/opt/shenava", "/etc/shenava")) else arg
            for arg in argv]


def _set(text: str, section: str, key: str, value: str) -> str:
    """``key = value`` in ``[section]`` of the example config (the README's "set ...")."""
    head = f"[{section}]\n"
    start = text.index(head) + len(head)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end
    body, n = re.subn(rf"^#? ?{key} = .*$", f"{key} = {value}", text[start:end], count=1,
                      flags=re.MULTILINE)
    assert n == 1, f"{section}.{key} not in the example config"
    return text[:start] + body + text[end:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def testpbx(tmp_path: Path) -> Iterator[int]:
    secret = tmp_path / "pbx-secret"
    secret.write_text(SECRET + "\n")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("shenava")), "testpbx", "--port", "0",
         "--secret-file", str(secret), "--recordings", str(tmp_path / "pbx-recordings"),
         "--manager-conf", str(ROOT / "etc" / "asterisk" / "manager.conf")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on [\d.]+:(\d+)", line)
        assert match, line
        yield int(match.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT_S)


def _datagrams(sock: socket.socket, until: str) -> list[str]:
    """Notification lines received until one equals ``until`` (bounded by the socket timeout)."""
    lines: list[str] = []
    while until not in lines:
        lines += sock.recv(4096).decode().splitlines()
    return lines


@pytest.mark.slow
def test_the_readme_install_section_step_by_step(
    tmp_path: Path, redis_url: str, testpbx: int
) -> None:
    root = tmp_path / "root"
    # 1. The venv under /opt/shenava, Shenava installed into it (from a copy of
    #    this checkout's files: a build in place would leave build/ behind).
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "var", "tests", "benchmarks"))
    venv = root / "opt" / "shenava"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(source)], check=True,
                   timeout=600, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shenava = venv / "bin" / "shenava"
    assert shenava.exists()

    # 2. The config in /etc/shenava from the example, the secret in a file;
    #    state and voicemail folders (owned by shenava on a real machine).
    etc = root / "etc" / "shenava"
    etc.mkdir(parents=True)
    (etc / "ami-secret").write_text(SECRET + "\n")
    (etc / "ami-secret").chmod(0o640)
    spool = root / "var" / "spool" / "shenava" / "voicemail"
    state = root / "var" / "lib" / "shenava"
    spool.mkdir(parents=True)
    state.mkdir(parents=True)
    text = (ROOT / "etc" / "shenava.example.toml").read_text(encoding="utf-8")
    text = _set(text, "ami", "port", str(testpbx))
    text = _set(text, "ami", "secret", "REMOVED").replace('secret = REMOVED\n', "")
    text = _set(text, "ami", "secret_file", f'"{etc / "ami-secret"}"')
    text = _set(text, "redis", "url", f'"{redis_url}"')
    text = _set(text, "http", "port", str(_free_port()))
    text = _set(text, "recordings", "dir", f'"{spool}"')
    text = _set(text, "recordings", "models_dir", f'"{state / "vosk-models"}"')
    (etc / "shenava.toml").write_text(text, encoding="utf-8")

    # 3. shenava check-config
    check = subprocess.run([str(shenava), "check-config", "-c", str(etc / "shenava.toml")],
                           capture_output=True, text=True, timeout=WAIT_S)
    assert check.returncode == 0, check.stdout + check.stderr

    # 4. shenava run as the unit starts it, with systemd's notify environment.
    argv = _rooted(_exec_start("shenava.service"), root)
    assert argv[1:3] == ["run", "-c"]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(WAIT_S)
    # stderr to a file standing in for the journal's stream, named by
    # JOURNAL_STREAM=device:inode as systemd does
    journal = open(tmp_path / "journal", "w+")
    info = os.fstat(journal.fileno())
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONUNBUFFERED": "1",
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WATCHDOG_USEC": "1000000",
        "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}",
    }
    daemon = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=journal,
                              text=True, cwd=tmp_path)
    try:
        lines = _datagrams(notify, "READY=1")
        lines += _datagrams(notify, "WATCHDOG=1")
        while not any(line.startswith("STATUS=") and "connected" in line
                      and "disconnected" not in line for line in lines):
            lines += notify.recv(4096).decode().splitlines()
        daemon.send_signal(signal.SIGTERM)
        lines += _datagrams(notify, "STOPPING=1")
        daemon.wait(timeout=WAIT_S)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        notify.close()
        journal.seek(0)
        err = journal.read()
        journal.close()
    assert daemon.returncode == 0, err
    assert f"STATUS=AMI 127.0.0.1:{testpbx}: connected" in lines
    log = err.splitlines()
    # journald's shape: a priority on every line, and nothing at error or worse
    # (a clean stop is not an error).
    assert log and all(re.match(r"<[0-7]>", line) for line in log), err
    # The statistics are flushed before Redis goes: no "statistics not written
    # ... kept for a retry" at a clean stop. (Other start-up work still waiting
    # on Redis when the stop comes, such as the recordings' job group, may
    # complain; that is theirs to quieten.)
    assert not [line for line in log if line[:3] in ("<0>", "<1>", "<2>")], err
    assert not [line for line in log if "statistics not written" in line], err
    assert any("AMI connected" in line for line in log)


def test_a_daemon_that_cannot_start_says_why_exits_1_and_is_never_ready(
    tmp_path: Path, redis_url: str
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = tmp_path / "shenava.toml"
    config.write_text(f'[ami]\nport = {_free_port()}\nsecret = "x"\n[redis]\nurl = "{redis_url}"\n'
                      f'[http]\nport = {port}\n')
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)
    try:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("shenava")), "run", "-c", str(config)],
            env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "JOURNAL_STREAM": "8:1"},
            capture_output=True, text=True, timeout=WAIT_S,
        )
        received = []
        while True:
            try:
                received.append(notify.recv(4096).decode())
            except BlockingIOError:
                break
    finally:
        taken.close()
        notify.close()
    assert done.returncode == 1, done.stderr
    assert f"Shenava cannot start: Couldn't listen on 127.0.0.1:{port}" in done.stderr
    assert not any("READY=1" in r for r in received)

"""Users (argon2id hashes, the file store, ``shenava users``), sessions and the lock-out."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import pytest_twisted

from complaints.roles import Actor, Role
from shenava.cli import main
from shenava.config import DEMO_CONFIG_TOML
from shenava.http.demo_door import DEMO_HASHER
from shenava.http.sessions import LockOut, SessionStore
from shenava.users import FileUserStore, UserError, check_password, make_user, verify


def test_only_argon2id_hashes_are_stored_and_they_verify(tmp_path: Path) -> None:
    store = FileUserStore(tmp_path / "users.json")
    store.put(make_user("sara", Role.SUPERVISOR, "a long password", 1.0, DEMO_HASHER))
    raw = (tmp_path / "users.json").read_text()
    assert "a long password" not in raw
    assert json.loads(raw)["users"]["sara"]["password_hash"].startswith("$argon2id$")
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600
    user = store.get("sara")
    assert user is not None and user.role is Role.SUPERVISOR
    assert verify(user, "a long password") and not verify(user, "a long passwore")
    assert not verify(None, "a long password")


def test_password_rules() -> None:
    check_password(Role.AGENT, "4821")  # a PIN, agents only
    with pytest.raises(UserError, match="at least 10"):
        check_password(Role.SUPERVISOR, "4821")
    with pytest.raises(UserError, match="at least 10"):
        check_password(Role.AGENT, "short")
    with pytest.raises(UserError):
        make_user("<b>x</b>", Role.ADMIN, "a long password", 0.0, DEMO_HASHER)


def test_sessions_expire_and_close() -> None:
    sessions = SessionStore(idle_s=100.0, max_s=1000.0)
    actor = Actor("sara", Role.SUPERVISOR)
    s = sessions.open(actor, 0.0)
    other = sessions.open(actor, 0.0)
    assert s.session_id != other.session_id and s.csrf != other.csrf
    assert sessions.find(s.session_id, 99.0) is not None
    assert sessions.find(s.session_id, 198.0) is not None  # idle moved on
    assert sessions.find(s.session_id, 299.0) is None
    assert sessions.close_person("sara") == 1
    assert sessions.find(other.session_id, 1.0) is None


def test_lock_out_by_name_and_by_address() -> None:
    lock = LockOut(per_name=3, per_address=5, window_s=60.0)
    for t in range(3):
        assert lock.retry_after("sara", "10.0.0.1", float(t)) is None
        lock.failed("sara", "10.0.0.1", float(t))
    assert lock.retry_after("sara", "10.0.0.9", 3.0) == ("name", 57.0)
    assert lock.retry_after("omid", "10.0.0.1", 3.0) is None
    lock.failed("omid", "10.0.0.1", 4.0)
    lock.failed("reza", "10.0.0.1", 5.0)
    assert lock.retry_after("anyone", "10.0.0.1", 6.0) == ("address", 54.0)
    assert lock.retry_after("sara", "10.0.0.9", 61.0) is None  # the window passed
    lock.succeeded("omid")
    assert lock.retry_after("omid", "10.0.0.2", 6.0) is None


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "shenava.toml"
    path.write_text(DEMO_CONFIG_TOML.replace("[http]\n", '[http]\nusers_file = "users.json"\n', 1))
    return path


def test_users_command_never_takes_a_password_from_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(_config(tmp_path))
    with pytest.raises(SystemExit) as exc:
        main(["users", "-c", config, "add", "sara", "--role", "supervisor", "--password", "x"])
    assert exc.value.code == 2
    monkeypatch.setenv("NEW_PW", "a long password")
    assert main(["users", "-c", config, "add", "sara", "--role", "supervisor", "--password-env", "NEW_PW"]) == 0
    (tmp_path / "pin").write_text("482913\n")
    assert main(["users", "-c", config, "add", "a1", "--role", "agent", "--password-file", str(tmp_path / "pin")]) == 0
    assert main(["users", "-c", config, "add", "zz", "--role", "agent", "--password-env", "NEW_PW"]) == 2
    assert "no agent zz" in capsys.readouterr().err
    assert main(["users", "-c", config, "add", "sara", "--role", "admin", "--password-env", "NEW_PW"]) == 2
    monkeypatch.setenv("NEW_PW", "short")
    assert main(["users", "-c", config, "passwd", "sara", "--password-env", "NEW_PW"]) == 2
    monkeypatch.setenv("NEW_PW", "another long one")
    assert main(["users", "-c", config, "passwd", "sara", "--password-env", "NEW_PW"]) == 0
    capsys.readouterr()
    assert main(["users", "-c", config, "list"]) == 0
    assert capsys.readouterr().out == "a1\tagent\nsara\tsupervisor\n"
    store = FileUserStore(tmp_path / "users.json")
    assert verify(store.get("sara"), "another long one") and verify(store.get("a1"), "482913")
    assert main(["users", "-c", config, "remove", "a1"]) == 0
    assert main(["users", "-c", config, "remove", "a1"]) == 1
    assert "482913" not in (tmp_path / "users.json").read_text()


@pytest_twisted.ensureDeferred
async def test_users_in_redis_sign_in(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without users_file, `shenava users` and the daemon share the Redis hash <prefix>:users."""
    from dataclasses import replace

    from twisted.internet import reactor
    from twisted.internet.threads import deferToThread

    from shenava.config import load_config
    from tests.http_helpers import running_app

    path = tmp_path / "shenava.toml"
    path.write_text(DEMO_CONFIG_TOML.replace('[redis]\nurl = ""', f'[redis]\nurl = "{redis_url}"', 1))
    monkeypatch.setenv("NEW_PW", "a long password")
    code = await deferToThread(main, ["users", "-c", str(path), "add", "sara", "--role", "admin",
                                      "--password-env", "NEW_PW"])
    assert code == 0
    config = load_config(path)
    assert config.http.users_file == ""
    async for api in running_app(reactor, replace(config, ami=replace(config.ami, port=1))):
        status, body, _ = await api.call("POST", "/api/session", role=None,
                                         body={"name": "sara", "password": "a long password"})
        assert (status, body["role"]) == (200, "admin")


def test_a_rewritten_users_file_keeps_its_owner_group_and_mode(tmp_path: Path) -> None:
    """The README makes ``/etc/shenava/users.json`` ``root:shenava 0640`` (empty) for the
    daemon to read; ``shenava users add`` run as root rewrote it ``root:root 0600``, and
    every sign-in failed (the daemon could not read it)."""
    import os

    path = tmp_path / "users.json"
    path.write_text("")
    path.chmod(0o640)
    group = 1 if os.geteuid() == 0 else os.getegid()  # root: another group, as shenava's
    os.chown(path, -1, group)
    store = FileUserStore(path)
    assert store.all() == []  # an empty file is no users yet
    store.put(make_user("sara", Role.SUPERVISOR, "a long password", 1.0, DEMO_HASHER))
    info = path.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o640, group)
    path.chmod(0o666)  # never left readable by others
    store.remove("sara")
    assert stat.S_IMODE(path.stat().st_mode) == 0o660


def test_users_add_with_no_terminal_says_where_the_password_goes(tmp_path: Path) -> None:
    """Run from a script or a service (no terminal, nothing on stdin), ``users add`` said
    "the user store cannot be reached: EOFError" and exited 3."""
    import subprocess
    import sys

    config = str(_config(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from shenava.cli import main; sys.exit(main(sys.argv[1:]))",
         "users", "-c", config, "add", "sara", "--role", "supervisor"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        start_new_session=True,  # no controlling terminal: getpass reads stdin
    )
    assert done.returncode == 2, done.stderr
    assert "--password-file" in done.stderr and "cannot be reached" not in done.stderr
    assert not (tmp_path / "users.json").exists()


def test_users_add_reads_a_piped_password_without_a_warning_or_echo(tmp_path: Path) -> None:
    """With no terminal, getpass warned ``GetPassWarning``, wrote its prompt and read
    standard input anyway, and asked twice; now the piped first line is the password."""
    import subprocess
    import sys

    config = str(_config(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from shenava.cli import main; sys.exit(main(sys.argv[1:]))",
         "users", "-c", config, "add", "sara", "--role", "supervisor"],
        input="a piped long password\n", capture_output=True, text=True, timeout=60,
        start_new_session=True,  # no controlling terminal
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "password (" not in done.stderr, done.stderr
    assert "a piped long password" not in done.stdout + done.stderr
    assert verify(FileUserStore(tmp_path / "users.json").get("sara"), "a piped long password")


def test_the_config_may_follow_the_action_and_its_absence_is_said_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(_config(tmp_path))
    monkeypatch.setenv("NEW_PW", "a long password")
    assert main(["users", "add", "sara", "--role", "supervisor", "--password-env", "NEW_PW", "-c", config]) == 0
    capsys.readouterr()
    assert main(["users", "list", "--config", config]) == 0
    assert capsys.readouterr().out == "sara\tsupervisor\n"
    assert main(["users", "list"]) == 2
    assert "give the config file: shenava users -c" in capsys.readouterr().err

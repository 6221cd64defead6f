"""``shenava complaints``: run in a subprocess-free way (its own asyncio loop), on the test Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis

from complaints.reference import reference_for

ROOT = Path(__file__).resolve().parent.parent


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from shenava.cli import main; sys.exit(main(sys.argv[1:]))",
         "complaints", "--redis-url", url, "--key-prefix", "t", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )


def _seed(url: str) -> str:
    """One complaint, written as the store writes it (via the store, in its own loop)."""
    out = subprocess.run(
        [sys.executable, "-c", (
            "import asyncio, sys\n"
            "from redis.asyncio import Redis\n"
            "from complaints.store import ComplaintStore\n"
            "from complaints.complaint import Channel\n"
            "async def main():\n"
            "    r = Redis.from_url(sys.argv[1], decode_responses=True)\n"
            "    c = await ComplaintStore(r, 't').open(1.9e9, category='billing', channel=Channel.IVR, number='09121234567')\n"
            "    print(c.reference)\n"
            "    await r.aclose()\n"
            "asyncio.run(main())\n"
        ), url],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=True,
    )
    return out.stdout.strip()


def test_list_show_update_export(redis_url: str) -> None:
    reference = _seed(redis_url)
    assert reference == reference_for(1)
    listed = _cli(redis_url, "list")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout.splitlines()[0])["reference"] == reference

    shown = _cli(redis_url, "show", reference)
    assert shown.returncode == 0 and json.loads(shown.stdout)["number"] == "09121234567"
    masked = _cli(redis_url, "--role", "agent", "show", reference)
    assert json.loads(masked.stdout)["number"] != "09121234567"

    updated = _cli(redis_url, "--as", "sup1", "update", reference, "--status", "resolved", "--note", "refunded")
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["status"] == "resolved"

    refused = _cli(redis_url, "--role", "agent", "update", reference, "--status", "closed")
    assert refused.returncode == 1

    exported = _cli(redis_url, "export", "--format", "csv")
    assert exported.returncode == 0 and reference in exported.stdout
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists(f"t:{{complaints}}:c:{reference}")


def test_no_redis_url_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from shenava.cli import main; sys.exit(main(sys.argv[1:]))",
         "complaints", "list"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 2 and "Redis URL" in result.stderr


def test_exported_times_are_in_the_sites_time_zone(redis_url: str, tmp_path: Path) -> None:
    reference = _seed(redis_url)  # opened at 1.9e9 = 2030-03-17T17:46:40Z
    config = tmp_path / "shenava.toml"
    config.write_text(
        '[ami]\nsecret = "x"\n'
        f'[redis]\nurl = "{redis_url}"\nkey_prefix = "t"\n'
        '[site]\ntimezone = "Asia/Tehran"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from shenava.cli import main; sys.exit(main(sys.argv[1:]))",
         "complaints", "--config", str(config), "export", "--format", "csv"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if reference in line)
    assert "2030-03-17T21:16:40+03:30" in row  # Tehran, not UTC


# -- the Redis URL's password is not put on the command line ---------------------------


def _password_url(redis_url: str) -> str:
    """A user with a password on the test server (the default user is left as it is)."""
    with redis.Redis.from_url(redis_url) as client:
        client.execute_command("ACL", "SETUSER", "cli", "on", ">cli-secret-9", "~*", "&*", "+@all")
    return redis_url.replace("redis://", "redis://cli:cli-secret-9@", 1)


def _cli_env(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", "import sys; from shenava.cli import main; sys.exit(main(sys.argv[1:]))",
         "complaints", "--key-prefix", "t", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "SHENAVA_REDIS_URL"} | (env or {}),
    )


def test_a_password_on_argv_is_warned_about_and_a_file_or_the_environment_take_it(
    redis_url: str, tmp_path: Path,
) -> None:
    """``--redis-url redis://:pw@...`` put the password where every user sees it (``ps``)."""
    reference = _seed(redis_url)
    url = _password_url(redis_url)
    try:
        on_argv = _cli_env("--redis-url", url, "show", reference)
        assert on_argv.returncode == 0, on_argv.stderr
        assert "--redis-url carries a password" in on_argv.stderr
        assert "cli-secret-9" not in on_argv.stderr
        plain = _cli_env("--redis-url", redis_url, "show", reference)
        assert plain.returncode == 0 and "warning" not in plain.stderr

        url_file = tmp_path / "redis-url"
        url_file.write_text(url + "\n", encoding="utf-8")
        from_file = _cli_env("--redis-url-file", str(url_file), "show", reference)
        assert from_file.returncode == 0, from_file.stderr
        assert from_file.stderr == "" and json.loads(from_file.stdout)["reference"] == reference
        url_file.write_text(url.replace("cli-secret-9", "wrong-secret"), encoding="utf-8")
        wrong = _cli_env("--redis-url-file", str(url_file), "show", reference)
        assert wrong.returncode != 0 and "Traceback" not in wrong.stderr

        from_env = _cli_env("show", reference, env={"SHENAVA_REDIS_URL": url})
        assert from_env.returncode == 0 and from_env.stderr == "", from_env.stderr

        missing = _cli_env("--redis-url-file", str(tmp_path / "nope"), "show", reference)
        assert missing.returncode == 2
        assert "--redis-url-file" in missing.stderr and "No such file" in missing.stderr
    finally:
        with redis.Redis.from_url(redis_url) as client:
            client.execute_command("ACL", "DELUSER", "cli")


def test_which_urls_carry_a_password() -> None:
    from shenava_base.redis_url_args import has_password

    assert has_password("redis://:pw@127.0.0.1:6379/0")
    assert has_password("rediss://user:pw@h/0")
    assert has_password("redis://h:6379/0?password=pw")
    assert has_password("redis+sentinel://:pw@h1:26379,h2:26379/mymaster")
    assert not has_password("redis://user@h:6379/0")
    assert not has_password("redis://127.0.0.1:6379/0")
    assert not has_password("unix:///run/redis.sock")

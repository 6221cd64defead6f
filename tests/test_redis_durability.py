"""check-config --redis reads the live server's durability settings and warns plainly."""

from __future__ import annotations

import io
from pathlib import Path

from shenava.check_config import EXIT_ERRORS, EXIT_OK, Severity, check_config, run_check
from shenava.redis_durability import durability_notes
from shenava.redis_server import start_redis_server


def config_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "shenava.toml"
    path.write_text(
        f'[ami]\nsecret = "not-the-placeholder"\n[redis]\nurl = "{url}"\n'
        f'[state]\nfolder = "{tmp_path / "state"}"\n', encoding="utf-8")
    return path


def test_the_notes_say_what_to_set() -> None:
    good = durability_notes({"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"})
    assert all(n.ok for n in good)
    bad = {n.code: n for n in durability_notes(
        {"appendonly": "no", "appendfsync": "everysec", "maxmemory-policy": "allkeys-lru"})}
    assert not any(n.ok for n in bad.values())
    assert "appendonly yes" in bad["redis.appendonly"].message
    assert "up to 1 s" in bad["redis.appendfsync"].message
    assert "deletes keys" in bad["redis.maxmemory_policy"].message


def test_a_live_server_is_read(tmp_path: Path) -> None:
    lax = start_redis_server(tmp_path / "lax", extra_args=("--maxmemory-policy", "allkeys-lru"))
    strict = start_redis_server(tmp_path / "strict", extra_args=("--appendfsync", "always"))
    try:
        findings = check_config(config_file(tmp_path, lax.url), redis=True)
        warned = {f.code for f in findings if f.severity is Severity.WARNING}
        assert warned == {"redis.appendfsync", "redis.maxmemory_policy"}
        assert check_config(config_file(tmp_path, lax.url)) == [findings[0]]  # not asked: not read
        out = io.StringIO()
        assert run_check(config_file(tmp_path, strict.url), None, out, redis=True) == EXIT_OK
        assert "0 warning(s)" in out.getvalue()
    finally:
        lax.stop()
        strict.stop()
    out = io.StringIO()
    assert run_check(config_file(tmp_path, lax.url), None, out, redis=True) == EXIT_ERRORS
    assert "redis.unreachable" in out.getvalue()


def test_no_state_folder_is_warned(tmp_path: Path) -> None:
    path = tmp_path / "bare.toml"
    path.write_text('[ami]\nsecret = "x-y-z"\n[redis]\nurl = "redis://127.0.0.1:1/0"\n', encoding="utf-8")
    warned = {f.code for f in check_config(path) if f.severity is Severity.WARNING}
    assert "config.state_folder" in warned

"""``--redis-url`` for the commands that talk to Redis straight (``shenava complaints``,
``shenava worker``): a URL given on the command line is seen by every user of the host
(``ps``, ``/proc/PID/cmdline``), so one with a password is taken from a file, the
environment or the config instead, and a password on argv is warned about."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qs, urlsplit

URL_ENV = "SHENAVA_REDIS_URL"


def add_redis_url_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url", metavar="URL",
        help="Redis URL (default: redis.url from the config); without a password only: "
             "argv is visible to every user (ps); see --redis-url-file",
    )
    parser.add_argument(
        "--redis-url-file", type=Path, metavar="FILE",
        help=f"read the Redis URL from FILE (e.g. mode 0600); or set ${URL_ENV}",
    )


def has_password(url: str) -> bool:
    """Whether a Redis URL carries a password (``redis://:pw@h``, ``redis://u:pw@h``,
    ``...?password=pw``; Sentinel and Cluster URLs alike)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    userinfo = parts.netloc.rpartition("@")[0]
    return bool(userinfo.partition(":")[2]) or bool(parse_qs(parts.query).get("password"))


class RedisUrlError(Exception):
    """The URL file cannot be read (the message says which and why)."""


def redis_url_from(args: argparse.Namespace, config_url: str, stderr: TextIO, prog: str) -> str:
    """``--redis-url``, else ``--redis-url-file``, else ``$SHENAVA_REDIS_URL``, else the
    config's ``redis.url`` ("" when none is given)."""
    given: str | None = getattr(args, "redis_url", None)
    if given:
        if has_password(given):
            print(f"{prog}: warning: --redis-url carries a password, which every user of this "
                  f"host can read (ps); give it in --redis-url-file, ${URL_ENV} or the config's "
                  "redis.url instead", file=stderr)
        return given
    path: Path | None = getattr(args, "redis_url_file", None)
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise RedisUrlError(f"--redis-url-file {path}: {getattr(exc, 'strerror', None) or exc}") from None
        if not text:
            raise RedisUrlError(f"--redis-url-file {path}: the file is empty")
        return text
    return os.environ.get(URL_ENV, "").strip() or config_url

"""A password typed at a terminal (never echoed), or piped in on standard input.

``getpass`` asks on the controlling terminal; with none (a script, cron, ``ssh
host cmd``, a service) it printed ``GetPassWarning: Can not control echo on the
terminal``, wrote its prompt and read standard input anyway. Here: when standard
input is not a terminal, its first line is the password (``printf '%s\\n' "$PW" |
shenava agent ...``), read without a prompt or a warning; on a terminal getpass
asks with echo off, and if it cannot turn echo off (its fallback), nothing is
read at all. Either failure is a :class:`NoPasswordError` whose message says
what to give instead.
"""

from __future__ import annotations

import getpass
import sys
import warnings
from typing import TextIO


class NoPasswordError(Exception):
    """No password could be read without showing it."""

    code = "cli.no_password"


def ask_password(prompt: str, stdin: TextIO | None = None) -> str:
    """The password: piped on ``stdin`` (its first line), else asked at the terminal."""
    stream = sys.stdin if stdin is None else stdin
    if stream is None or stream.closed or not stream.isatty():
        line = stream.readline() if stream is not None and not stream.closed else ""
        if not line:
            raise NoPasswordError("no terminal to ask on, and nothing on standard input")
        password = line.rstrip("\r\n")
        if not password:
            raise NoPasswordError("the first line of standard input is empty")
        return password
    with warnings.catch_warnings():
        # getpass's fallback warns first, then reads with echo: stop at the warning
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(prompt)
        except getpass.GetPassWarning:
            raise NoPasswordError("this terminal cannot hide what is typed") from None
        except EOFError:
            raise NoPasswordError("nothing was typed") from None

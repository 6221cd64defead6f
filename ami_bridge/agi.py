"""AsyncAGI payloads: URL-encoded ``Result`` and ``Env`` fields, parsed (pure).

``AsyncAGIExec`` carries ``Result: 200%20result%3D0%20(timeout)%20endpos%3D54173%0A``,
which is ``200 result=0 (timeout) endpos=54173``: a status code, the result,
an optional parenthesised datum and optional ``key=value`` extras.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

_RESULT = re.compile(r"^(\d{3})[ -](.*)$", re.S)
_TOKEN = re.compile(r"\(([^)]*)\)|(\w+)=(\S*)|(\S+)")


@dataclass(frozen=True, slots=True)
class AGIResult:
    """One AGI reply. ``result`` is the raw ``result=`` value ("" if absent)."""

    code: int
    result: str
    data: str | None = None
    extras: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def hung_up(self) -> bool:
        """The channel hung up while the command ran (``result=-1``)."""
        return self.result == "-1"

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"

    @property
    def digits(self) -> str:
        """Digits from ``GET DATA``: the result as typed, "" on timeout or hang-up."""
        if self.hung_up:
            return ""
        return self.result

    @property
    def dtmf(self) -> str:
        """The key from ``STREAM FILE``/``WAIT FOR DIGIT``: result is an ASCII code."""
        if self.result.isdigit() and self.result != "0":
            return chr(int(self.result))
        return ""

    @property
    def endpos(self) -> int | None:
        value = self.extras.get("endpos")
        return int(value) if value is not None and value.isdigit() else None


def parse_result(text: str) -> AGIResult:
    """Parse a decoded AGI reply line such as ``200 result=2``."""
    raw = text
    text = text.strip()
    match = _RESULT.match(text)
    if match is None:
        return AGIResult(code=0, result="", data=text or None, raw=raw)
    code = int(match.group(1))
    rest = match.group(2)
    result = ""
    data: str | None = None
    extras: dict[str, str] = {}
    if code != 200:
        return AGIResult(code=code, result="", data=rest.strip() or None, raw=raw)
    for paren, key, value, word in _TOKEN.findall(rest):
        if key == "result" and not result:
            result = value
        elif key:
            extras[key] = value
        elif paren or (word and data is None):
            data = paren or word
    return AGIResult(code=code, result=result, data=data, extras=extras, raw=raw)


def decode_result(encoded: str) -> AGIResult:
    """Parse the URL-encoded ``Result`` header of ``AsyncAGIExec``."""
    return parse_result(unquote(encoded))


def decode_env(encoded: str) -> dict[str, str]:
    """Parse the URL-encoded ``Env`` header of ``AsyncAGIStart`` into a dict."""
    env: dict[str, str] = {}
    for line in unquote(encoded).split("\n"):
        name, sep, value = line.partition(": ")
        if sep:
            env[name] = value
    return env


def quote_argument(value: str) -> str:
    """Quote one AGI command argument (spaces and quotes escaped)."""
    if value and not any(c in value for c in ' "\\\t'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'

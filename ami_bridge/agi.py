"""AsyncAGI payloads: URL-encoded ``Result`` and ``Env`` fields, parsed (pure).

``AsyncAGIExec`` carries ``Result: 200%20result%3D0%20(timeout)%20endpos%3D54173%0A``,
which is ``200 result=0 (timeout) endpos=54173``: a status code, the result,
an optional parenthesised datum and optional ``key=value`` extras.

Parsing is total: :func:`parse_result` and :func:`decode_result` return an
:class:`AGIResult` whose every property can be read without raising, or raise
:class:`~ami_bridge.errors.AGIResultError` (code ``ami.agi_bad_result``) for a
result that cannot be read. Nothing else escapes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from ami_bridge.errors import AGIResultError

_RESULT = re.compile(r"^([0-9]{3})[ -](.*)$", re.S | re.A)
_TOKEN = re.compile(r"\(([^)]*)\)|(\w+)=(\S*)|(\S+)", re.A)
# What ``result=`` can hold: a number (``-1``, ``1``, an application's
# return value) or the keys ``GET DATA`` read ("" when none).
_ANY_RESULT = re.compile(r"-?[0-9]{1,10}|[0-9*#A-Da-d]{0,256}", re.A)
_KEYS_READ = re.compile(r"-1|[0-9*#A-Da-d]{0,256}", re.A)
_NUMBER = re.compile(r"[0-9]{1,18}", re.A)
# The ASCII codes of the keys a phone sends (what STREAM FILE and friends
# answer with), and 0 for none.
_KEY_CODES = frozenset(ord(c) for c in "0123456789*#ABCDabcd")
_KEY_CODE = re.compile(r"-1|0|[0-9]{2,3}", re.A)

# Verbs (``agi_verb``) whose result is the ASCII code of a key, 0 or -1.
KEY_CODE_VERBS = frozenset({
    "STREAM FILE", "CONTROL STREAM", "GET OPTION", "WAIT FOR", "RECORD FILE",
    "SAY DIGITS", "SAY NUMBER", "SAY ALPHA", "SAY PHONETIC", "SAY DATE",
    "SAY TIME", "SAY DATETIME",
})
# Verbs whose result is the keys read.
KEYS_READ_VERBS = frozenset({"GET DATA"})


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
        """The key from ``STREAM FILE``/``WAIT FOR DIGIT``: result is an ASCII code.

        "" when no key was pressed or the code is no key's."""
        if _NUMBER.fullmatch(self.result) is None:
            return ""
        code = int(self.result)
        return chr(code) if code in _KEY_CODES else ""

    @property
    def endpos(self) -> int | None:
        value = self.extras.get("endpos")
        if value is None or _NUMBER.fullmatch(value) is None:
            return None
        return int(value)


def parse_result(text: str, *, verb: str | None = None) -> AGIResult:
    """Parse a decoded AGI reply line such as ``200 result=2``.

    ``verb`` (``agi_verb`` of the command: ``STREAM FILE``, ``GET DATA``)
    says what the result may hold; without it any number or keys pass.
    Raises :class:`AGIResultError` for a reply that is not an AGI reply or a
    result the command cannot give.
    """
    raw = text
    text = text.strip()
    if not text:
        raise AGIResultError("empty", verb=verb)
    match = _RESULT.match(text)
    if match is None:
        raise AGIResultError("no three-digit status code", verb=verb)
    code = int(match.group(1))
    rest = match.group(2)
    if code != 200:
        return AGIResult(code=code, result="", data=rest.strip() or None, raw=raw)
    result: str | None = None
    data: str | None = None
    extras: dict[str, str] = {}
    for paren, key, value, word in _TOKEN.findall(rest):
        if key == "result" and result is None:
            result = value
        elif key:
            extras[key] = value
        elif paren or (word and data is None):
            data = paren or word
    if result is None:
        raise AGIResultError("200 without result=", verb=verb)
    _check(result, verb)
    return AGIResult(code=code, result=result, data=data, extras=extras, raw=raw)


def _check(result: str, verb: str | None) -> None:
    if verb in KEY_CODE_VERBS:
        if _KEY_CODE.fullmatch(result) is None or (
            result not in ("-1", "0") and int(result) not in _KEY_CODES
        ):
            raise AGIResultError(f"not a key code ({len(result)} characters)", verb=verb)
    elif verb in KEYS_READ_VERBS:
        if _KEYS_READ.fullmatch(result) is None:
            raise AGIResultError(f"not keys ({len(result)} characters)", verb=verb)
    elif _ANY_RESULT.fullmatch(result) is None:
        raise AGIResultError(f"neither a number nor keys ({len(result)} characters)", verb=verb)


# Decoded results by (encoded text, verb). A daemon sees few distinct replies
# ("200 result=0", a prompt's "endpos", a menu key): parsing each once saves
# the unquoting and the regular expressions on every AGI round trip. Results
# are frozen (their ``extras`` are never changed); bounded by starting afresh.
_DECODED: dict[tuple[str, str | None], AGIResult] = {}
DECODED_MAX = 1024


def decode_result(encoded: str | None, *, verb: str | None = None) -> AGIResult:
    """Parse the URL-encoded ``Result`` header of ``AsyncAGIExec`` (None: it was missing)."""
    if encoded is None:
        raise AGIResultError("no Result header", verb=verb)
    key = (encoded, verb)
    result = _DECODED.get(key)
    if result is None:
        result = parse_result(unquote(encoded), verb=verb)  # an unreadable one raises: not kept
        if len(_DECODED) >= DECODED_MAX:
            _DECODED.clear()
        _DECODED[key] = result
    return result


# The escapes an AGI environment is made of (Asterisk's ``ast_uri_encode``:
# ": " and the line ends, a Local channel's "/", "@" and ";"): each is one
# ASCII character, which UTF-8 decodes alone. None of them decodes to "%".
_ENV_ESCAPES = (("%3A%20", ": "), ("%0A", "\n"), ("%20", " "), ("%2F", "/"), ("%40", "@"),
                ("%3B", ";"))


def _unquote_env(encoded: str) -> str:
    """``unquote(encoded)``, the common escapes of an environment replaced in C.

    If any ``%`` is left (another escape, a Persian caller name's UTF-8
    bytes, a lower-case or broken escape), the whole text goes through
    ``unquote`` as before: the stdlib's splitting took about 30 µs for each
    caller's ``AsyncAGIStart``, these replacements a fraction of it."""
    text = encoded
    for escape, char in _ENV_ESCAPES:
        text = text.replace(escape, char)
        if "%" not in text:
            return text
    return unquote(encoded)


def decode_env(encoded: str) -> dict[str, str]:
    """Parse the URL-encoded ``Env`` header of ``AsyncAGIStart`` into a dict."""
    env: dict[str, str] = {}
    for line in _unquote_env(encoded).split("\n"):
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

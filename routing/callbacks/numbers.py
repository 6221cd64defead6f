"""Customer numbers as a flag keys them: digits and a leading ``+``."""

from __future__ import annotations

import re

from routing.callbacks.errors import InvalidNumberError

_FORMATTING = str.maketrans("", "", " -.()/")
_NUMBER_RE = re.compile(r"^\+?[0-9]{3,20}$")


def normalize_number(number: str | None) -> str:
    """The customer number a flag is keyed by: formatting removed, digits kept.

    Raises :class:`InvalidNumberError` for anything that cannot be dialled
    (``anonymous``, empty, a SIP URI): such a caller gets no flag.
    """
    text = (number or "").strip().translate(_FORMATTING)
    if not _NUMBER_RE.match(text):
        raise InvalidNumberError("not a number that can be called back")
    return text

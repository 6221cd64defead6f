"""Caller numbers are personal data: logs and listings show them masked.

``mask_number("09121234567") == "0912***4567"``. The mask is always three
stars, so the number's length is not shown either.
"""

from __future__ import annotations

MASK = "***"
_FORMATTING = str.maketrans("", "", " -.()/")
SHORT_NUMBER_DIGITS = 4
"""Numbers this short are internal extensions or service codes: shown as they are."""


def mask_number(number: str | None) -> str:
    """Mask a phone number for logs: a short prefix and the last digits stay visible.

    - 10 digits or more: up to 4 leading and the last 4 digits
      (``09121234567`` -> ``0912***4567``, ``+989121234567`` -> ``+9891***4567``);
      at least 3 digits are always hidden.
    - 5 to 9 digits: only the last 2 (``88776655`` -> ``***55``).
    - up to 4 digits (extensions, service codes): unchanged.
    - empty or ``None``: ``""``; anything that is not a number (``anonymous``,
      a SIP URI, a name): ``***``, since it may hide a number or a name.
    """
    if not number:
        return ""
    text = number.strip().translate(_FORMATTING)
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return MASK
    sign = "+" if plus else ""
    n = len(digits)
    if n <= SHORT_NUMBER_DIGITS:
        return sign + digits
    if n < 10:
        return f"{sign}{MASK}{digits[-2:]}"
    head = min(4, n - 4 - len(MASK))
    return f"{sign}{digits[:head]}{MASK}{digits[-4:]}"

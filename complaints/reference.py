"""Reference numbers: 7 digits and a Damm check digit, read aloud and typed on a keypad.

Digits only, so the IVR takes a reference by DTMF and reads it back digit by
digit. The Damm check digit catches every single wrong digit and every swap of
two adjacent digits, the two mistakes people make reading a number aloud or
typing it; the IVR says "that reference is not valid" at once instead of
"not found" after a lookup.

The 7-digit body is not the serial itself: serials are spread over
1000000-9999999 by an affine bijection, so references never start with 0
(spreadsheets drop it), are unique without a lookup, and do not reveal how many
complaints the site takes or let a caller guess a neighbour's reference by
adding one.
"""

from __future__ import annotations

from complaints.errors import InvalidReferenceError, ReferenceSpaceExhaustedError

BODY_DIGITS = 7
REFERENCE_DIGITS = BODY_DIGITS + 1
_LOW = 10 ** (BODY_DIGITS - 1)
_SPAN = 9 * _LOW  # 9_000_000 bodies: 1000000..9999999
_MULTIPLIER = 7_654_321  # coprime to 9_000_000 (= 2^6 3^2 5^6): the map is a bijection
_OFFSET = 3_141_592

# Damm's totally anti-symmetric quasigroup of order 10.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm_digit(digits: str) -> str:
    """The check digit that makes ``digits + it`` pass :func:`damm_valid`."""
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][int(ch)]
    return str(interim)


def damm_valid(digits: str) -> bool:
    return digits.isascii() and digits.isdigit() and damm_digit(digits) == "0"


def reference_for(serial: int) -> str:
    """The reference of the ``serial``-th complaint (serials start at 1)."""
    if not 1 <= serial <= _SPAN:
        raise ReferenceSpaceExhaustedError(f"serial {serial} is outside 1..{_SPAN}")
    body = str(_LOW + (_MULTIPLIER * (serial - 1) + _OFFSET) % _SPAN)
    return body + damm_digit(body)


def parse_reference(text: str) -> str:
    """A reference as typed or spoken (spaces, dashes and a trailing # allowed), checked.

    Raises :class:`InvalidReferenceError` for the wrong length, a non-digit or a
    wrong check digit.
    """
    digits = text.strip().rstrip("#").replace(" ", "").replace("-", "")
    if len(digits) != REFERENCE_DIGITS or not damm_valid(digits) or digits[0] == "0":
        raise InvalidReferenceError(f"not a valid {REFERENCE_DIGITS}-digit reference")
    return digits


def is_valid_reference(text: str) -> bool:
    try:
        parse_reference(text)
    except InvalidReferenceError:
        return False
    return True


def spoken_digits(reference: str) -> tuple[str, ...]:
    """The digits the IVR reads back, one prompt each (``SAY DIGITS`` does the same)."""
    return tuple(parse_reference(reference))

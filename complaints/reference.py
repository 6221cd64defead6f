"""Reference numbers: 7 digits and a Damm check digit, read aloud and typed on a keypad.

Digits only, so the IVR takes a reference by DTMF and reads it back digit by
digit. The Damm check digit catches every single wrong digit and every swap of
two adjacent digits, the two mistakes people make reading a number aloud or
typing it; the IVR says "that reference is not valid" at once instead of
"not found" after a lookup.

The 7-digit body is not the serial itself: serials are spread over
1000000-9999999 by an affine bijection (:func:`reference_for`), so references
never start with 0 (spreadsheets drop it) and are unique without a lookup.

That affine map is public, so on its own one reference would reveal the site's
volume and every other reference. New references therefore come from a
*keyed* permutation (:class:`KeyedReferences`): a counter ``n`` (reserved in
blocks from Redis, see :mod:`complaints.reference_blocks`) goes through a
Feistel network keyed with the site's secret (HMAC-SHA256 rounds, cycle-walked
into range), and the result picks a serial *above* ``base``, the last serial
handed out before the switch. So every existing reference stays valid and
unique, new ones can never collide with old ones, and without the key one
reference says nothing about any other.
"""

from __future__ import annotations

import hashlib
import hmac

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


FEISTEL_ROUNDS = 8


class KeyedReferences:
    """References ``reference_for(base + 1 + P_key(n))`` for counter values ``n = 0, 1, ...``.

    ``P_key`` is a permutation of ``0..capacity-1`` (``capacity = 9_000_000 - base``):
    distinct ``n`` give distinct references, none equal to the first ``base``
    references of :func:`reference_for`.
    """

    def __init__(self, key: bytes, base: int) -> None:
        if len(key) < 16:
            raise ValueError("the reference key must be at least 16 bytes")
        if not 0 <= base < _SPAN:
            raise ReferenceSpaceExhaustedError(f"base {base} leaves no serials")
        self._round_keys = tuple(
            hmac.new(key, b"shenava-reference-round-%d" % i, hashlib.sha256).digest()
            for i in range(FEISTEL_ROUNDS)
        )
        # HMAC-SHA256 of each round, its padded key hashed once (RFC 2104): a round
        # copies the two SHA-256 states instead of building an ``hmac.HMAC``.
        self._round_states = tuple(_hmac_states(k) for k in self._round_keys)
        self.base = base
        self.capacity = _SPAN - base
        # the smallest balanced Feistel domain holding the range: fewer than 4 walks on average
        self._half_bits = max(1, ((self.capacity - 1).bit_length() + 1) // 2)

    def reference(self, n: int) -> str:
        if not 0 <= n < self.capacity:
            raise ReferenceSpaceExhaustedError(f"counter {n} is outside 0..{self.capacity - 1}")
        x = self._feistel(n)
        while x >= self.capacity:  # cycle-walking keeps it a permutation of the range
            x = self._feistel(x)
        return reference_for(self.base + 1 + x)

    def _feistel(self, x: int) -> int:
        half = self._half_bits
        mask = (1 << half) - 1
        left, right = x >> half, x & mask
        for inner_state, outer_state in self._round_states:
            inner = inner_state.copy()
            inner.update(right.to_bytes(4, "big"))
            outer = outer_state.copy()
            outer.update(inner.digest())
            digest = outer.digest()  # == hmac.new(round_key, right's 4 bytes, sha256).digest()
            left, right = right, left ^ (int.from_bytes(digest[:4], "big") & mask)
        return (left << half) | right


_SHA256_BLOCK = 64


def _hmac_states(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 after ``key ^ ipad`` and after ``key ^ opad``: HMAC's two halves (RFC 2104)."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    return inner, outer


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

from __future__ import annotations

import pytest

from shenava_base.privacy import mask_number


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("09121234567", "0912***4567"),
        ("+989121234567", "+9891***4567"),
        ("0912 123 4567", "0912***4567"),
        ("(021) 8877-6655", "0218***6655"),
        ("9121234567", "912***4567"),
        ("88776655", "***55"),
        ("12345", "***45"),
        ("101", "101"),
        ("1234", "1234"),
        ("", ""),
        (None, ""),
        ("anonymous", "***"),
        ("sip:09121234567@example.com", "***"),
        ("+", "***"),
        ("۰۹۱۲۱۲۳۴۵۶۷", "***"),  # Persian digits are not dialled; never shown either
    ],
)
def test_mask_number(number: str | None, masked: str) -> None:
    assert mask_number(number) == masked


@pytest.mark.parametrize("number", ["09121234567", "+989121234567", "12345678901234", "88776655"])
def test_the_full_number_never_survives(number: str) -> None:
    masked = mask_number(number)
    digits = "".join(c for c in masked if c.isdigit())
    assert len(digits) <= len(number.lstrip("+")) - 3
    assert "***" in masked

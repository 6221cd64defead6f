"""``[ami]`` caps on event lists and tracked channels: defaults, values, key-path errors."""

from __future__ import annotations

from typing import Any

import pytest

from shenava.config import Config, ConfigError
from tests.test_config import MINIMAL, with_change


def test_defaults() -> None:
    ami = Config.from_mapping(MINIMAL).ami
    assert (ami.max_list_items, ami.max_list_bytes, ami.max_channels) == (100_000, 128 * 1024 * 1024, 100_000)


def test_values_are_taken() -> None:
    data = with_change("ami.max_list_items", 500, MINIMAL)
    data["ami"].update(max_list_bytes=1 << 20, max_channels=2000)
    ami = Config.from_mapping(data).ami
    assert (ami.max_list_items, ami.max_list_bytes, ami.max_channels) == (500, 1 << 20, 2000)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("ami.max_list_items", 0, "ami.max_list_items: expected an integer from 100 to 10000000, got 0"),
        ("ami.max_list_items", "lots", "ami.max_list_items: expected an integer"),
        ("ami.max_list_bytes", 1024, "ami.max_list_bytes: expected an integer from 65536 to 4294967296, got 1024"),
        ("ami.max_channels", -5, "ami.max_channels: expected an integer from 100 to 10000000, got -5"),
        ("ami.max_channels", 1.5, "ami.max_channels: expected an integer"),
    ],
)
def test_errors_name_the_key_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping(with_change(path, value, MINIMAL))
    assert str(caught.value).startswith(message)
    assert caught.value.path == path

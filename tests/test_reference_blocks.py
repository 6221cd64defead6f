"""Keyed references from reserved blocks: checkable, unique across daemons and restarts, no Redis needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from complaints.complaint import Channel
from complaints.errors import ReferenceSpaceExhaustedError
from complaints.reference import KeyedReferences, damm_valid, is_valid_reference, reference_for
from complaints.reference_blocks import (
    ReferenceBlocks,
    ReferenceKeyMismatchError,
    ReferencesNotReadyError,
)
from complaints.store import ComplaintStore
from shenava_base.aio import as_deferred

KEY = b"0123456789abcdef0123456789abcdef"


def test_keyed_references_are_a_permutation_above_the_legacy_serials() -> None:
    refs = KeyedReferences(KEY, base=500)
    made = [refs.reference(n) for n in range(20_000)]
    assert len(set(made)) == len(made)
    assert all(len(r) == 8 and r[0] != "0" and damm_valid(r) for r in made)
    legacy = {reference_for(s) for s in range(1, 501)}
    assert not legacy & set(made)
    # another key gives other references: one reference does not reveal the next
    other = KeyedReferences(b"another key of sixteen bytes or more", base=500)
    assert [other.reference(n) for n in range(5)] != made[:5]
    assert made[1] != reference_for(502) and made[0] != reference_for(501)


@pytest.mark.parametrize(
    ("key", "base", "expected"),
    [
        (b"0123456789abcdef", 0,
         ["89398578", "90005000", "85591468", "78241495", "42078978", "76257398"]),
        (b"k" * 100, 123456,
         ["10606229", "35383097", "18999796", "43648872", "69856598", "68778408"]),
        (bytes(range(64)), 8_999_000,
         ["44502227", "35613370", "35860312", "39070178", "10181348", "10181348"]),
    ],
)
def test_keyed_references_are_those_already_handed_out(
    key: bytes, base: int, expected: list[str]
) -> None:
    """References made with ``hmac.new`` per round before the rounds kept their SHA-256
    states: a site's counter must keep giving the same references (no collision)."""
    refs = KeyedReferences(key, base)
    assert [refs.reference(n) for n in (0, 1, 2, 7, 999, refs.capacity - 1)] == expected


@given(st.binary(min_size=16, max_size=200), st.integers(0, 9_000_000 - 1))
def test_each_feistel_round_is_hmac_sha256_of_its_round_key(key: bytes, n: int) -> None:
    import hashlib
    import hmac

    refs = KeyedReferences(key, base=0)
    half = refs._half_bits
    mask = (1 << half) - 1
    left, right = n >> half, n & mask
    for round_key in refs._round_keys:
        digest = hmac.new(round_key, right.to_bytes(4, "big"), hashlib.sha256).digest()
        left, right = right, left ^ (int.from_bytes(digest[:4], "big") & mask)
    assert refs._feistel(n) == (left << half) | right


def test_the_whole_space_is_a_bijection_at_its_end() -> None:
    refs = KeyedReferences(KEY, base=9_000_000 - 300)
    made = {refs.reference(n) for n in range(300)}
    assert made == {reference_for(s) for s in range(9_000_000 - 299, 9_000_001)}
    with pytest.raises(ReferenceSpaceExhaustedError):
        refs.reference(300)


@given(st.integers(0, 8_998_999), st.integers(0, 7), st.integers(0, 9))
def test_any_single_wrong_digit_of_a_keyed_reference_is_caught(n: int, pos: int, digit: int) -> None:
    ref = KeyedReferences(KEY, base=1000).reference(n)
    typo = ref[:pos] + str(digit) + ref[pos + 1 :]
    assert is_valid_reference(typo) == (typo == ref)


def blocks(client: Redis, folder: Path | None, block: int = 10, secret: str = "") -> ReferenceBlocks:
    b = ReferenceBlocks(client, "shenava", folder=folder, secret=secret, block=block)
    b.load()
    return b


@pytest_twisted.ensureDeferred
async def test_existing_references_stay_valid_and_new_ones_never_collide(redis_client: Redis, tmp_path: Path) -> None:
    legacy = ComplaintStore(redis_client, "shenava")
    old = [await as_deferred(legacy.open(1e9, category="billing", channel=Channel.IVR)) for _ in range(3)]
    assert [c.reference for c in old] == [reference_for(n) for n in (1, 2, 3)]
    refs = blocks(redis_client, tmp_path)
    await as_deferred(refs.prepare())
    store = ComplaintStore(redis_client, "shenava", refs)
    new = [await as_deferred(store.open(1e9, category="billing", channel=Channel.IVR)) for _ in range(30)]
    assert len({c.reference for c in old + new}) == 33
    for c in old:  # the old ones are still found by their reference
        assert (await as_deferred(store.get(c.reference))).reference == c.reference
    assert await as_deferred(redis_client.get("shenava:{complaints}:refbase")) == "3"


@pytest_twisted.ensureDeferred
async def test_two_daemons_and_restarts_never_repeat_a_reference(redis_client: Redis, tmp_path: Path) -> None:
    seen: list[str] = []
    a = blocks(redis_client, tmp_path / "a")
    b = blocks(redis_client, tmp_path / "b")
    await as_deferred(a.prepare())
    await as_deferred(b.prepare())
    for _ in range(15):
        seen += [a.next(), b.next()]
    # daemon a restarts (its block in use is dropped, never reused)
    a2 = blocks(redis_client, tmp_path / "a")
    await as_deferred(a2.prepare())
    seen += [a2.next() for _ in range(20)]  # the two blocks in hand
    assert len(seen) == len(set(seen)) == 50


@pytest_twisted.ensureDeferred
async def test_references_are_handed_out_while_redis_is_away(redis_url: str, tmp_path: Path) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    refs = blocks(client, tmp_path, block=10)
    await as_deferred(refs.prepare())
    await as_deferred(client.aclose())
    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    # restart with Redis unreachable: key and base come from the file
    offline = ReferenceBlocks(gone, "shenava", folder=tmp_path, block=10)
    offline.load()
    assert offline.in_hand == 10  # the block in use was dropped, the spare kept
    got = [offline.next() for _ in range(10)]
    assert len(set(got)) == 10 and all(is_valid_reference(r) for r in got)
    with pytest.raises(ReferencesNotReadyError):
        offline.next()
    await as_deferred(gone.aclose())


@pytest_twisted.ensureDeferred
async def test_a_different_secret_is_refused(redis_client: Redis, tmp_path: Path) -> None:
    first = blocks(redis_client, tmp_path / "a", secret="the site secret 123")
    await as_deferred(first.prepare())
    other = blocks(redis_client, tmp_path / "b", secret="not the same secret")
    with pytest.raises(ReferenceKeyMismatchError):
        await as_deferred(other.prepare())

"""A red team's findings against the HTTP edge and the pages, each refused by a running
daemon's listener (real sockets): lock-out bypass by sign-ins sent at once, ..."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from twisted.internet.defer import gatherResults

from tests.http_helpers import PASSWORD, Running, running_app


@pytest_twisted.async_yield_fixture()
async def api() -> AsyncIterator[Running]:
    from twisted.internet import reactor

    async for running in running_app(reactor):
        yield running


@pytest_twisted.ensureDeferred
async def test_sign_ins_sent_at_once_do_not_get_past_the_lock_out(api: Running) -> None:
    """The lock-out was checked before the (slow, queued) password check and the failure
    counted after it: thirty guesses sent together were all checked."""
    from twisted.internet.defer import ensureDeferred

    api.add_user("sara", "supervisor")
    limit = api.app.config.http.lockout_failures
    guesses = [ensureDeferred(api.call("POST", "/api/session", role=None,
                                       body={"name": "sara", "password": f"guess-{n}"}))
               for n in range(30)]
    answers: list[Any] = await gatherResults(guesses)
    checked = [body for code, body, _ in answers if code == 401]
    locked = [body for code, body, _ in answers if code == 429]
    assert len(checked) == limit, [c for c, _, _ in answers]
    assert len(locked) == 30 - limit
    code, _, _ = await api.call("POST", "/api/session", role=None,
                                body={"name": "sara", "password": PASSWORD})
    assert code == 429

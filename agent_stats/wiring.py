"""How the agent_stats package joins the daemon's object graph (see shenava.app)."""

from __future__ import annotations

from typing import Any


def install(app: Any) -> Any:
    """Add this package's storage and subscriptions to app; returns its handle."""
    return None

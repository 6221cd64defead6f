"""``[state]``: its typed section and its parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shenava_base.config_table import Table


@dataclass(frozen=True)
class StateConfig:
    """``[state]``: the daemon's own durable folder (the journal, reserved reference blocks).

    An empty ``folder`` keeps both in memory only: fine for tests and the
    demo, refused by ``shenava run``.
    """

    folder: str = ""
    reference_secret: str = field(default="", repr=False)
    """The per-site key of the reference permutation; "" = made once and shared through Redis."""
    reference_block: int = 5000
    """References reserved from Redis at a time (two blocks are kept in hand)."""
    journal_max_bytes: int = 1024 * 1024 * 1024

    @property
    def durable(self) -> bool:
        return bool(self.folder)


def parse_state(t: Table) -> StateConfig:
    d = StateConfig()
    folder = t.get_str("folder", d.folder, non_empty=False)
    if folder and t.base_dir is not None and not Path(folder).is_absolute():
        folder = str(t.base_dir / folder)
    secret = t.get_secret("reference_secret", "reference_secret_file", required=False)
    if secret and len(secret) < 16:
        raise t.error(
            "reference_secret_file" if t.has("reference_secret_file") else "reference_secret",
            "must be at least 16 characters (it keys the reference permutation)",
        )
    return StateConfig(
        folder=folder,
        reference_secret=secret,
        reference_block=t.get_int("reference_block", d.reference_block, minimum=10, maximum=100_000),
        journal_max_bytes=t.get_int("journal_max_bytes", d.journal_max_bytes, minimum=1024 * 1024),
    )

"""Sites: several daemons, one per Asterisk, sharing one Redis (or Redis Cluster).

A site is named by ``[site] id`` (short, lowercase). Each store that belongs
to one site puts the id into its Cluster hash tag, after the family name::

    shenava:{stats}:heartbeat          the default site ("": a single-site install)
    shenava:{stats:tehran}:heartbeat   site "tehran"

so a site's statistics, live figures, call state, leader lease and journal
acknowledgement keys stay in one slot per family (every ``MULTI`` and script
of a store still touches one slot), and different sites' keys spread over the
cluster. The default site keeps the names Shenava always used: an existing
install reads its stored data unchanged.

Shared by every site (one tag each, no site in it): the complaint register
(``{complaints}``, references included), callback flags (``{callbacks}``,
each flag naming the site that dials it) and abuse reports, the users, and
the register of sites itself (``{sites}:all``: site id -> a short JSON
description with the site's ``[sla]`` settings, written by each daemon at
start), from which the centre's figures are summed, and each site's figures of
the moment (``{sites}:now``: site id -> JSON, written by that site's daemon
every few seconds: calls waiting, agents by state, callbacks due, and its SL
counters of the moment, ``"sl"``), which the wallboards of every site show and
the centre's figures sum. A daemon writes only its own site's field.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "DEFAULT_SITE",
    "SITE_FAMILIES",
    "SiteEntry",
    "check_site_id",
    "publish_site_now",
    "register_site",
    "registered_sites",
    "site_now_key",
    "sites_now",
    "site_label",
    "site_tag",
    "sites_key",
]

DEFAULT_SITE = ""
"""The site of a single-daemon install: its keys carry no site id."""
SITE_FAMILIES = ("stats", "live", "calls", "journal")
"""The key families that belong to one site (the rest are shared by the centre)."""
DEFAULT_LABEL = "default"
_SITE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def check_site_id(value: str) -> str | None:
    """None if ``value`` is a valid ``[site] id``; otherwise why not (config errors)."""
    if value == DEFAULT_SITE or _SITE_RE.match(value):
        return None
    return "expected 1-32 lowercase letters, digits, _ or - (starting with a letter or digit), or \"\""


def site_tag(family: str, site: str = DEFAULT_SITE) -> str:
    """The Cluster hash tag of ``family``'s keys of ``site``: ``{family}`` or ``{family:site}``."""
    return "{" + family + "}" if site == DEFAULT_SITE else "{" + family + ":" + site + "}"


def site_label(site: str) -> str:
    """How a site is shown (the default site has no id)."""
    return site or DEFAULT_LABEL


def sites_key(prefix: str) -> str:
    """The register of sites: a hash, site id -> JSON ``{"name", "timezone", "sla"}``."""
    return f"{prefix}:{{sites}}:all"


SiteEntry = dict[str, Any]


def site_now_key(prefix: str) -> str:
    """Each site's figures of the moment: a hash, site id -> JSON (see :func:`publish_site_now`)."""
    return f"{prefix}:{{sites}}:now"


async def register_site(client: Any, prefix: str, site: str, *, name: str, timezone: str,
                        sla: dict[str, Any] | None = None) -> None:
    """Say in Redis that ``site`` exists (idempotent; the centre's figures read the register).

    ``sla``: the site's ``[sla]`` settings as plain values, so ``shenava
    check-sites`` can tell sites whose service levels cannot be summed."""
    body: dict[str, Any] = {"name": name, "timezone": timezone}
    if sla is not None:
        body["sla"] = sla
    entry = json.dumps(body, separators=(",", ":"), sort_keys=True)
    await client.hset(sites_key(prefix), site, entry)


async def publish_site_now(client: Any, prefix: str, site: str, figures: dict[str, Any], *,
                           read: bool = False) -> dict[str, SiteEntry] | None:
    """This site's figures of the moment, for every site's wallboard (its own field only).

    ``read``: and every site's as they are then (:func:`sites_now`), in the same round
    trip (both commands name the one ``{sites}:now`` key)."""
    body = json.dumps(figures, separators=(",", ":"), sort_keys=True)
    if not read:
        await client.hset(site_now_key(prefix), site, body)
        return None
    pipe = client.pipeline(transaction=False)
    pipe.hset(site_now_key(prefix), site, body)
    pipe.hgetall(site_now_key(prefix))
    _, raw = await pipe.execute()
    return _entries(raw)


async def sites_now(client: Any, prefix: str) -> dict[str, SiteEntry]:
    """Every site's figures of the moment as last published, by site id."""
    return _entries(await client.hgetall(site_now_key(prefix)))


async def registered_sites(client: Any, prefix: str) -> dict[str, SiteEntry]:
    """Every site that registered, by id (sorted; the default site's id is "")."""
    return dict(sorted(_entries(await client.hgetall(sites_key(prefix))).items()))


def _entries(raw: Any) -> dict[str, SiteEntry]:
    out: dict[str, SiteEntry] = {}
    for key, value in raw.items():
        site = key.decode() if isinstance(key, bytes) else str(key)
        try:
            entry = json.loads(value)
        except (TypeError, ValueError):
            entry = {}
        out[site] = entry if isinstance(entry, dict) else {}
    return out

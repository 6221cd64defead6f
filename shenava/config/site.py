"""``[site]``: its typed section and its parser."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shenava.config.checks import SUPPORTED_LANGUAGES, _context
from shenava_base.config_table import Table
from shenava_base.sites import check_site_id


@dataclass(frozen=True)
class SiteConfig:
    """The call centre itself: its name, clock, languages and dialplan contexts."""

    name: str = "Shenava"
    id: str = ""
    """This daemon's site among several sharing one Redis ("" = the default, single site)."""
    timezone: str = "UTC"
    languages: tuple[str, ...] = ("fa", "en")
    support_context: str = "shenava-complaints"
    connect_context: str = "shenava-connect"
    callback_context: str = "shenava-callback"
    """Where a callback's agent leg is sent to dial the customer (``[shenava-callback]``)."""

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _timezone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "expected an IANA time zone such as \"Asia/Tehran\" or \"UTC\""
    return None


def parse_site(t: Table) -> SiteConfig:
    d = SiteConfig()
    return SiteConfig(
        name=t.get_str("name", d.name),
        id=t.get_str("id", d.id, non_empty=False, check=check_site_id),
        timezone=t.get_str("timezone", d.timezone, check=_timezone),
        languages=t.get_str_list("languages", d.languages, non_empty=True, allowed=SUPPORTED_LANGUAGES),
        support_context=t.get_str("support_context", d.support_context, check=_context),
        connect_context=t.get_str("connect_context", d.connect_context, check=_context),
        callback_context=t.get_str("callback_context", d.callback_context, check=_context),
    )

"""The same rules for the test PBX: the AMI rights a ``manager.conf`` user has."""

from __future__ import annotations

from pathlib import Path

from shenava.asterisk_conf import (
    read_asterisk_conf,
)
from shenava.check_config.ami_classes import parse_classes
from shenava.check_config.event_filters import parse_event_filters
from testpbx.options import AmiRights


def ami_rights(manager_conf: Path, username: str) -> AmiRights:
    """What ``manager.conf`` lets ``username`` see and do, for the test PBX to apply.

    The tests and ``shenava testpbx --manager-conf`` serve the daemon exactly
    the events a real Asterisk would send that user (its read classes and
    event filters) and refuse the actions it may not run, so a snippet that
    would starve the daemon fails the tests instead of the first real call.
    Raises ValueError for what the test PBX does not imitate (header() and
    name() filters, methods other than a regular expression) or a missing user.
    """
    conf = read_asterisk_conf(manager_conf)
    user = next((conf.section(n) for n in conf.names() if n.lower() == username.lower()), None)
    if user is None:
        raise ValueError(f"{manager_conf}: no AMI user [{username}]")
    filters, refused = parse_event_filters(user)
    if refused:
        raise ValueError(f"{manager_conf}: {refused[0].message}")
    include: list[str] = []
    exclude: list[str] = []
    for flt in filters:
        if flt.regex is None or flt.event_name is not None or flt.partial:
            raise ValueError(f"{flt.text}: the test PBX applies only regular-expression filters")
        (exclude if flt.exclude else include).append(flt.regex.pattern)
    read, write = user.get("read"), user.get("write")
    return AmiRights.of(
        parse_classes(read.value) if read else (),
        parse_classes(write.value) if write else (),
        include=include,
        exclude=exclude,
    )


def manager_channelvars(manager_conf: Path) -> tuple[str, ...]:
    """``[general] channelvars`` of ``manager.conf``: the channel variables
    every channel event carries as ``ChanVariable: NAME=value`` (Asterisk's
    ``load_channelvars``: the last such line wins, names split at commas)."""
    general = read_asterisk_conf(manager_conf).section("general")
    item = general.get("channelvars") if general is not None else None
    if item is None:
        return ()
    return tuple(name.strip() for name in item.value.split(",") if name.strip())

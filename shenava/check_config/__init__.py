"""``shenava check-config``: is the Shenava config valid, and does Asterisk agree with it?

Given the operator's Asterisk folder it reads ``manager.conf`` and
``extensions.conf`` (through :mod:`shenava.asterisk_conf`, i.e. pyst2) and
checks what the daemon relies on: AMI enabled on the right port and address,
the AMI user with the same secret, the read/write classes, event filters that
drop the noise but none of the events Shenava needs, and the dialplan contexts
(the support line, the callback context, and the optional connect context).
It reads them as Asterisk 22 does (main/manager.c, main/pbx.c): class lists
are compared exactly, filters are parsed like manager_add_filter(), extension
patterns matched like _extension_match_core().

Exit codes (see ``shenava.cli``): 0 nothing wrong, 1 at least one error,
2 the Shenava config file itself is invalid.

One module per file checked: :mod:`.manager` (and :mod:`.event_filters`),
:mod:`.dialplan`, :mod:`.sounds`; :mod:`.run` holds the entry points,
:mod:`.findings` what every check returns, :mod:`.rights` the test PBX's view.
"""

from __future__ import annotations

from shenava.check_config.ami_classes import (
    ASTERISK_CLASSES,
    NEEDED_EVENTS,
    NOISE_EVENTS,
    REQUIRED_READ,
    REQUIRED_WRITE,
    SUGGESTED_READ,
    SUGGESTED_WRITE,
    parse_classes,
)
from shenava.check_config.dialplan import (
    CALLBACK_SAMPLE_NUMBERS,
    Step,
    check_dialplan,
    dial_options,
    dialplan_steps,
    extension_matches,
    split_application,
    split_arguments,
)
from shenava.check_config.event_filters import EventFilter, event_passes, parse_event_filters
from shenava.check_config.findings import (
    CONFIG_INVALID,
    EXIT_CONFIG_INVALID,
    EXIT_ERRORS,
    EXIT_OK,
    Finding,
    Severity,
)
from shenava.check_config.manager import PLACEHOLDER_SECRETS, check_manager
from shenava.check_config.rights import ami_rights, manager_channelvars
from shenava.check_config.run import (
    check_asterisk_dir,
    check_config,
    check_redis,
    exit_code,
    format_report,
    run_check,
)
from shenava.check_config.sounds import FLOW_PROMPTS, SHOWN_MISSING, check_sounds, menu_prompts

__all__ = [
    "ASTERISK_CLASSES",
    "CALLBACK_SAMPLE_NUMBERS",
    "CONFIG_INVALID",
    "EXIT_CONFIG_INVALID",
    "EXIT_ERRORS",
    "EXIT_OK",
    "EventFilter",
    "FLOW_PROMPTS",
    "Finding",
    "NEEDED_EVENTS",
    "NOISE_EVENTS",
    "PLACEHOLDER_SECRETS",
    "REQUIRED_READ",
    "REQUIRED_WRITE",
    "SHOWN_MISSING",
    "SUGGESTED_READ",
    "SUGGESTED_WRITE",
    "Severity",
    "Step",
    "ami_rights",
    "check_asterisk_dir",
    "check_config",
    "check_dialplan",
    "check_manager",
    "check_redis",
    "check_sounds",
    "manager_channelvars",
    "dial_options",
    "dialplan_steps",
    "event_passes",
    "exit_code",
    "extension_matches",
    "format_report",
    "menu_prompts",
    "parse_classes",
    "parse_event_filters",
    "run_check",
    "split_application",
    "split_arguments",
]

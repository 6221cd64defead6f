"""Config sections of the packages: sla, breaks, wellbeing, recordings, complaints,
abuse, callbacks, routing, ivr. Every error names its key path."""

from __future__ import annotations

import copy
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent_stats.breaks import BreakConfig
from agent_stats.sla import ChoiceCounting, ClockStart, SLAConfig
from agent_stats.states import NotReadyReason
from agent_stats.wellbeing import WellbeingConfig
from complaints.abuse import AbusePolicy
from complaints.service import RegisterPolicy
from ivr.menu_schema import default_menu_file
from recordings.config import RecordingsConfig
from routing.callbacks import DialPolicy, Window
from routing.calls import Urgency
from routing.dispatch import DispatchConfig
from routing.hold import HoldConfig
from routing.scoring import DEFAULT_CATEGORY_POINTS, ScoringConfig
from routing.selection import SelectionConfig
from shenava.config import (
    AmiConfig,
    CallbacksConfig,
    Config,
    ConfigError,
    IvrConfig,
    RoutingConfig,
    default_config,
    load_config,
    utc_offset_s,
)

BASE: dict[str, Any] = {"ami": {"secret": "s3cret"}, "site": {"timezone": "UTC"}}


def with_change(path: str, value: Any, base: dict[str, Any] = BASE) -> dict[str, Any]:
    """A copy of ``base`` with the dotted ``path`` set (intermediate tables created)."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


def load(data: dict[str, Any]) -> Config:
    return Config.from_mapping(data)


# -- defaults ------------------------------------------------------------------


def test_config_built_in_code_has_every_section_default() -> None:
    config = Config(ami=AmiConfig(secret="x"))
    assert config.sla == SLAConfig()
    assert config.breaks == BreakConfig() and config.wellbeing == WellbeingConfig()
    assert config.recordings == RecordingsConfig()
    assert config.complaints == RegisterPolicy() and config.complaints.abuse == AbusePolicy()
    assert config.callbacks.policy == DialPolicy()
    assert config.callbacks.hours.tz == ZoneInfo("UTC")
    assert config.callbacks.retention_s == RegisterPolicy().retention_s
    assert config.routing == RoutingConfig(DispatchConfig(), ScoringConfig(), SelectionConfig())
    assert config.ivr.menus_file == default_menu_file() and config.ivr.sound_folder == "shenava"
    assert config.ivr.menus.settings.start


def test_a_file_without_the_sections_takes_the_package_defaults() -> None:
    config = load(BASE)
    assert config == Config(ami=AmiConfig(secret="s3cret"), site=config.site)
    assert config.sla.utc_offset_s == 0.0
    assert config.callbacks.hours.windows[0] == (Window(8 * 60, 21 * 60),)
    assert all(config.callbacks.hours.windows[day] == config.callbacks.hours.windows[0] for day in range(7))


def test_sla_days_follow_the_site_time_zone() -> None:
    config = load(with_change("site.timezone", "Asia/Tehran"))
    assert config.sla.utc_offset_s == 12600.0
    assert config.callbacks.hours.tz == ZoneInfo("Asia/Tehran")
    winter = datetime(2024, 1, 15, 12, 0, tzinfo=ZoneInfo("UTC"))
    summer = datetime(2024, 7, 15, 12, 0, tzinfo=ZoneInfo("UTC"))
    assert utc_offset_s("Europe/London", winter) == 0.0
    assert utc_offset_s("Europe/London", summer) == 3600.0


def test_demo_config_is_sensible_for_the_demo() -> None:
    config = default_config()
    assert config.routing.dispatch.wrap_up_s == 5.0
    assert config.routing.dispatch.hold.announce_every_s == 30.0
    hours = config.callbacks.hours
    assert hours.tz == ZoneInfo("Asia/Tehran")
    assert all(w == (Window(0, 24 * 60),) for w in hours.windows.values())
    assert config.sla.utc_offset_s == 12600.0
    assert config.ivr.menus.settings.languages == ("fa", "en")


# -- every key, typed --------------------------------------------------------------

FULL_TOML = """\
[ami]
secret = "s3cret"

[site]
timezone = "Asia/Tehran"

[sla]
threshold_s = 30
short_abandon_s = 3
clock_start = "arrival"
choice_counting = "excluded"
target = 0.9
window_s = 600
slot_s = 30
interval_s = 1800
app_queue_servicelevel_s = 25

[breaks]
earn_per_hour_s = 400
personal_exempt_s = 200
max_wait_s = 600
counted_reasons = ["break", "lunch"]
queued_reasons = ["break"]
headroom_target = 0.75
min_staffed = 2

[wellbeing]
max_without_break_s = 5400
min_rest_s = 60
occupancy_window_s = 1800
occupancy_limit = 0.85
occupancy_min_staffed_s = 900
hard_calls_limit = 2
hard_calls_window_s = 1800
long_call_s = 900
consecutive_calls_limit = 15

[recordings]
dir = "/srv/vm"
asterisk_dir = "/var/spool/asterisk/vm"
models_dir = "/srv/models"
urgent_min_conf = 0.5
workers = 2
max_attempts = 4
claim_idle_s = 30

[recordings.models]
fa = "/srv/models/fa"

[recordings.urgent_words]
en = ["fire", "gas leak"]

[complaints]
repeat_window_s = 86400
unresolved_callback_s = 3600
retention_s = 864000

[abuse]
route_to_experienced = false
flag_window_s = "forever"
recovery_s = 600

[callbacks]
max_attempts = 5
backoff_s = [60, 120.5]
short_abandon_s = 4
abandon_delay_s = 30
min_free_agents = 2
max_waiting_calls = 3
min_service_level = 0.7
lease_ms = 60000
retention_s = 172800

[callbacks.calling_hours]
timezone = "Europe/London"
windows = { daily = ["09:00-17:00"], fri = ["22:00-02:00"], sun = [] }

[routing]
ring_timeout_s = 15
wrap_up_s = 0
on_no_answer = "none"
caller_id = "Complaints <100>"
decision_history = 500

[routing.hold]
music_class = "calm"
announce_every_s = 60
offer_options = false
announce_position = false

[routing.scoring]
unknown_category_points = 10
vulnerable_points = 200
open_complaint_points = 0
recent_call_points = -10
callback_flag_points = 50
transcript_urgency_points = 70
ageing_points_per_s = 2

[routing.scoring.category_points]
billing = 45
fraud = 300

[routing.scoring.urgency_points]
critical = 400

[routing.selection]
spare_hard_in_a_row = false

[ivr]
menus_file = "menus.toml"
sound_folder = "custom/shenava"
"""


@pytest.fixture
def full_file(tmp_path: Path) -> Path:
    (tmp_path / "menus.toml").write_bytes(default_menu_file().read_bytes())
    path = tmp_path / "shenava.toml"
    path.write_text(FULL_TOML, encoding="utf-8")
    return path


def test_a_full_file_round_trips_into_typed_objects(full_file: Path) -> None:
    config = load_config(full_file)
    assert config.sla == SLAConfig(
        threshold_s=30.0, short_abandon_s=3.0, clock_start=ClockStart.ARRIVAL,
        choice_counting=ChoiceCounting.EXCLUDED, target=0.9, window_s=600.0, slot_s=30.0,
        interval_s=1800.0, utc_offset_s=12600.0, app_queue_servicelevel_s=25.0,
    )
    assert config.breaks == BreakConfig(
        earn_per_hour_s=400.0, personal_exempt_s=200.0, max_wait_s=600.0,
        counted_reasons=frozenset({NotReadyReason.BREAK, NotReadyReason.LUNCH}),
        queued_reasons=frozenset({NotReadyReason.BREAK}), headroom_target=0.75, min_staffed=2,
    )
    assert config.wellbeing == WellbeingConfig(
        max_without_break_s=5400.0, min_rest_s=60.0, occupancy_window_s=1800.0, occupancy_limit=0.85,
        occupancy_min_staffed_s=900.0, hard_calls_limit=2, hard_calls_window_s=1800.0,
        long_call_s=900.0, consecutive_calls_limit=15,
    )
    assert config.recordings.record_dir == Path("/var/spool/asterisk/vm")
    assert config.recordings.models == {"fa": Path("/srv/models/fa")}
    assert config.recordings.urgent_words == {"en": ("fire", "gas leak")}
    assert (config.recordings.workers, config.recordings.max_attempts) == (2, 4)
    assert config.complaints == RegisterPolicy(
        repeat_window_s=86400.0, unresolved_callback_s=3600.0, retention_s=864000.0,
        abuse=AbusePolicy(route_to_experienced=False, flag_window_s=None, recovery_s=600.0),
    )
    assert config.callbacks.policy == DialPolicy(
        max_attempts=5, backoff_s=(60.0, 120.5), short_abandon_s=4.0, abandon_delay_s=30.0,
        min_free_agents=2, max_waiting_calls=3, min_service_level=0.7, lease_ms=60000,
    )
    assert isinstance(config.callbacks, CallbacksConfig) and config.callbacks.retention_s == 172800.0
    hours = config.callbacks.hours
    assert hours.tz == ZoneInfo("Europe/London")
    assert hours.windows[0] == (Window(9 * 60, 17 * 60),)
    assert hours.windows[4] == (Window(22 * 60, 2 * 60),)
    assert hours.windows[6] == ()
    assert config.routing.dispatch == DispatchConfig(
        ring_timeout_s=15.0, wrap_up_s=0.0, on_no_answer=None, caller_id="Complaints <100>",
        hold=HoldConfig(music_class="calm", announce_every_s=60.0, offer_options=False, announce_position=False),
    )
    scoring = config.routing.scoring
    assert scoring.category_points == {**DEFAULT_CATEGORY_POINTS, "billing": 45.0, "fraud": 300.0}
    assert scoring.urgency_points == {Urgency.NORMAL: 0.0, Urgency.HIGH: 90.0, Urgency.CRITICAL: 400.0}
    assert (scoring.unknown_category_points, scoring.recent_call_points, scoring.ageing_points_per_s) == (
        10.0, -10.0, 2.0,
    )
    assert config.routing.decision_history == 500
    assert config.routing.selection == SelectionConfig(
        spare_hard_in_a_row=False, abusive_caller_prefers_experienced=False
    )
    assert config.ivr.menus_file == full_file.parent / "menus.toml"
    assert config.ivr.sound_folder == "custom/shenava"
    # loading again gives an equal object
    assert load_config(full_file) == config


def test_callback_retention_defaults_to_the_complaints_retention() -> None:
    config = load(with_change("complaints.retention_s", 1000))
    assert config.callbacks.retention_s == 1000.0


def test_example_file_documents_every_new_key(shipped_etc: Path) -> None:
    text = (shipped_etc / "shenava.example.toml").read_text(encoding="utf-8")
    config = load_config(shipped_etc / "shenava.example.toml")
    keys: list[str] = []
    for obj in (config.sla, config.breaks, config.wellbeing, config.recordings, config.complaints,
                config.complaints.abuse, config.callbacks.policy, config.routing.dispatch,
                config.routing.dispatch.hold, config.routing.scoring):
        keys += [f.name for f in fields(obj)]
    hidden = {"utc_offset_s", "abuse", "agent_leg_application", "agent_leg_max_s", "hold",
              "category_points", "urgency_points", "models", "urgent_words"}
    for key in set(keys) - hidden:
        assert f"{key} =" in text, f"{key} is not in the example"
    for key in ("[routing.scoring.category_points]", "[routing.scoring.urgency_points]",
                "[callbacks.calling_hours]", "timezone =", "windows =", "retention_s =",
                "spare_hard_in_a_row =", "menus_file =", "sound_folder =",
                "[recordings.models]", "[recordings.urgent_words]"):
        assert key in text


def test_docs_reference_every_key(shipped_etc: Path) -> None:
    doc = (shipped_etc.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = load_config(shipped_etc / "shenava.example.toml")
    sections: dict[str, Any] = {
        "ami": example.ami, "redis": example.redis, "site": example.site, "http": example.http,
        "log": example.log, "agents[i]": example.agents[0], "recordings": example.recordings,
        "sla": example.sla, "breaks": example.breaks, "wellbeing": example.wellbeing,
        "complaints": example.complaints, "abuse": example.complaints.abuse,
        "callbacks": example.callbacks.policy, "routing": example.routing.dispatch,
        "routing.hold": example.routing.dispatch.hold, "routing.scoring": example.routing.scoring,
    }
    # Not keys of their own: derived from others (routing.hold.sound_folder is
    # ivr.sound_folder; utc_offset_s comes from site.timezone) or fixed in code.
    hidden = {"utc_offset_s", "abuse", "agent_leg_application", "agent_leg_max_s", "hold",
              "secret_from", "sound_folder"}
    for key in ("callbacks.retention_s", "callbacks.calling_hours.timezone", "callbacks.calling_hours.windows",
                "routing.selection.spare_hard_in_a_row", "ivr.menus_file", "ivr.sound_folder",
                "ami.secret_file"):
        assert f"`{key}`" in doc, f"{key} is not in docs/configuration.md"
    for section, obj in sections.items():
        for key in (f.name for f in fields(obj)):
            if key not in hidden:
                assert f"`{section}.{key}" in doc, f"{section}.{key} is not in docs/configuration.md"


# -- errors name the key path -----------------------------------------------------

ERRORS: list[tuple[str, Any, str]] = [
    # [sla]
    ("sla.threshold_s", -1, "sla.threshold_s: expected a number from 0 to 3600, got -1"),
    ("sla.clock_start", "JOIN", 'sla.clock_start: expected one of "join", "arrival", got "JOIN"'),
    ("sla.choice_counting", "never", "sla.choice_counting: expected one of "),
    ("sla.target", 80, "sla.target: expected a number from 0 to 1, got 80"),
    ("sla.slot_s", 0, "sla.slot_s: expected a number greater than 0"),
    ("sla.window_s", 30, "sla.window_s: must be at least one slot (slot_s)"),
    ("sla.interval_s", 7000, "sla.interval_s: must divide a day"),
    ("sla.app_queue_servicelevel_s", 2.5, "sla.app_queue_servicelevel_s: expected an integer from 0 to 3600"),
    ("sla.utc_offset_s", 0, "sla.utc_offset_s: unknown key"),
    ("sla", 1, "sla: expected a table ([sla]), got 1"),
    # [breaks]
    ("breaks.earn_per_hour_s", -5, "breaks.earn_per_hour_s: expected a number from 0 to 3600, got -5"),
    ("breaks.counted_reasons", ["nap"], 'breaks.counted_reasons[0]: expected one of "break", '),
    ("breaks.counted_reasons", ["break", "recovery"], "breaks.counted_reasons: recovery is never counted nor queued"),
    ("breaks.queued_reasons", ["personal"], "breaks.queued_reasons: personal breaks never wait"),
    ("breaks.headroom_target", 1.5, "breaks.headroom_target: expected a number from 0 to 1, got 1.5"),
    ("breaks.min_staffed", -1, "breaks.min_staffed: expected an integer from 0 to 10000, got -1"),
    ("breaks.earn", 1, "breaks.earn: unknown key"),
    # [wellbeing]
    ("wellbeing.occupancy_limit", 2, "wellbeing.occupancy_limit: expected a number from 0 to 1, got 2"),
    ("wellbeing.hard_calls_limit", 0, "wellbeing.hard_calls_limit: expected an integer from 1 to 1000, got 0"),
    ("wellbeing.consecutive_calls_limit", 0, "wellbeing.consecutive_calls_limit: expected an integer from 1"),
    ("wellbeing.long_call_s", "20m", 'wellbeing.long_call_s: expected a number greater than 0 of at most 86400, got "20m"'),
    # [recordings]
    ("recordings.dir", "spool", 'recordings.dir: must be an absolute path, got "spool"'),
    ("recordings.workers", 0, "recordings.workers: expected an integer from 1 to 16, got 0"),
    ("recordings.models", {"farsi": "/x"}, "recordings.models.farsi: expected a language code"),
    # [complaints] and [abuse]
    ("complaints.retention_s", 0, "complaints.retention_s: expected a number greater than 0, got 0"),
    ("complaints.repeat_window", 1, "complaints.repeat_window: unknown key"),
    ("abuse.flag_window_s", 0, 'abuse.flag_window_s: expected "forever" or a number greater than 0, got 0'),
    ("abuse.flag_window_s", "never", 'abuse.flag_window_s: expected "forever" or a number greater than 0, got "never"'),
    ("abuse.recovery_s", -1, "abuse.recovery_s: expected a number greater than 0"),
    ("abuse.route_to_experienced", "yes", 'abuse.route_to_experienced: expected true or false, got "yes"'),
    # [callbacks]
    ("callbacks.max_attempts", 0, "callbacks.max_attempts: expected an integer from 1 to 100, got 0"),
    ("callbacks.backoff_s", [], "callbacks.backoff_s: must not be empty"),
    ("callbacks.backoff_s", [60, -1], "callbacks.backoff_s[1]: expected a number from 0 to 604799, got -1"),
    ("callbacks.backoff_s", [60, "1h"], 'callbacks.backoff_s[1]: expected a number from 0 to 604799, got "1h"'),
    ("callbacks.backoff_s", 60, "callbacks.backoff_s: expected an array of numbers, got 60"),
    ("callbacks.abandon_delay_s", -1, "callbacks.abandon_delay_s: expected a number from 0 to 86400, got -1"),
    ("callbacks.min_free_agents", 0, "callbacks.min_free_agents: expected an integer from 1 to 10000, got 0"),
    ("callbacks.min_service_level", 80, "callbacks.min_service_level: expected a number from 0 to 1, got 80"),
    ("callbacks.lease_ms", 999, "callbacks.lease_ms: expected an integer from 1000 to 86400000, got 999"),
    ("callbacks.retention_s", 0, "callbacks.retention_s: expected a number greater than 0, got 0"),
    ("callbacks.calling_hours.timezone", "Tehran", "callbacks.calling_hours.timezone: expected an IANA time zone"),
    ("callbacks.calling_hours.windows", {"monday": ["08:00-17:00"]},
     "callbacks.calling_hours.windows.monday: unknown day (expected mon, tue, wed, thu, fri, sat, sun or daily)"),
    ("callbacks.calling_hours.windows", {"mon": "08:00-17:00"},
     'callbacks.calling_hours.windows.mon: expected an array of strings, got "08:00-17:00"'),
    ("callbacks.calling_hours.windows", {"daily": ["8-17"]},
     "callbacks.calling_hours.windows.daily[0]: expected HH:MM-HH:MM, got '8-17'"),
    ("callbacks.calling_hours.windows", {"daily": ["08:00-25:00"]},
     "callbacks.calling_hours.windows.daily[0]: not a time of day in '08:00-25:00'"),
    ("callbacks.calling_hours.windows", {"daily": ["08:00-08:00"]},
     "callbacks.calling_hours.windows.daily[0]: empty window '08:00-08:00'"),
    ("callbacks.calling_hours.windows", {"daily": []},
     "callbacks.calling_hours.windows: no window on any day: no callback could ever be dialled"),
    ("callbacks.calling_hours.windows", "daily", 'callbacks.calling_hours.windows: expected a table'),
    ("callbacks.calling_hours.days", {}, "callbacks.calling_hours.days: unknown key"),
    # [routing]
    ("routing.ring_timeout_s", 1, "routing.ring_timeout_s: expected a number from 5 to 300, got 1"),
    ("routing.wrap_up_s", -1, "routing.wrap_up_s: expected a number from 0 to 3600, got -1"),
    ("routing.on_no_answer", "busy", 'routing.on_no_answer: expected one of "missed", "technical", "none", got "busy"'),
    ("routing.caller_id", "", "routing.caller_id: must not be empty"),
    ("routing.decision_history", 0, "routing.decision_history: expected an integer from 1 to 1000000, got 0"),
    ("routing.caller_id", "a\nb", "routing.caller_id: must not contain CR, LF or NUL"),
    ("routing.hold.music_class", "a,b", "routing.hold.music_class: expected a musiconhold.conf class"),
    ("routing.hold.announce_every_s", 1, "routing.hold.announce_every_s: expected a number from 5 to 3600, got 1"),
    ("routing.hold.offer_options", 1, "routing.hold.offer_options: expected true or false, got 1"),
    ("routing.hold.music", "x", "routing.hold.music: unknown key"),
    ("routing.scoring.ageing_points_per_s", 0, "routing.scoring.ageing_points_per_s: expected a number greater than 0"),
    ("routing.scoring.vulnerable_points", "high", 'routing.scoring.vulnerable_points: expected a number from'),
    ("routing.scoring.category_points", {"bad name": 1}, "routing.scoring.category_points.bad name: expected a category name"),
    ("routing.scoring.category_points", {"billing": "x"}, 'routing.scoring.category_points.billing: expected a number'),
    ("routing.scoring.urgency_points", {"extreme": 1}, "routing.scoring.urgency_points.extreme: unknown urgency"),
    ("routing.scoring.cap", 1, "routing.scoring.cap: unknown key"),
    ("routing.selection.abusive_caller_prefers_experienced", True,
     "routing.selection.abusive_caller_prefers_experienced: unknown key"),
    ("routing.dispatch", {}, "routing.dispatch: unknown key"),
    # [ivr]
    ("ivr.menus_file", "menus.toml", 'ivr.menus_file: must be an absolute path, got "menus.toml"'),
    ("ivr.menus_file", "/nonexistent/menus.toml", "ivr.menus_file: /nonexistent/menus.toml: cannot read"),
    ("ivr.sound_folder", "../x", 'ivr.sound_folder: expected a folder under Asterisk\'s sounds/<lang>/'),
    ("ivr.sound_folder", "", "ivr.sound_folder: must not be empty"),
    ("ivr.menus", {}, "ivr.menus: unknown key"),
]


@pytest.mark.parametrize(("path", "value", "message"), ERRORS, ids=[f"{p}={v!r}" for p, v, _ in ERRORS])
def test_errors_name_the_key_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(with_change(path, value))
    assert str(caught.value).startswith(message)
    assert caught.value.path == message.split(": ", 1)[0]


def test_an_invalid_menu_file_is_reported_under_ivr_menus_file(tmp_path: Path) -> None:
    menus = tmp_path / "menus.toml"
    menus.write_text('[settings]\nlanguages = ["fa"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(with_change("ivr.menus_file", str(menus)))
    assert caught.value.path == "ivr.menus_file"
    assert str(menus) in caught.value.reason and "settings" in caught.value.reason


def test_an_unreadable_relative_menu_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "shenava.toml"
    path.write_text('[ami]\nsecret = "x"\n[ivr]\nmenus_file = "menus/site.toml"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=f"^ivr.menus_file: {tmp_path}/menus/site.toml: cannot read"):
        load_config(path)


def test_ivr_config_equality_ignores_the_loaded_book() -> None:
    assert IvrConfig() == IvrConfig()


def test_daemon_section_bounds_and_defaults() -> None:
    from shenava.config import Config, ConfigError

    base = {"ami": {"secret": "x"}}
    daemon = Config.from_mapping(base).daemon
    assert (daemon.stop_timeout_s, daemon.lease_s, daemon.leader_lease) == (10.0, 3.0, True)
    config = Config.from_mapping({**base, "daemon": {"lease_s": 5, "leader_lease": False}})
    assert (config.daemon.lease_s, config.daemon.leader_lease) == (5.0, False)
    with pytest.raises(ConfigError, match="^daemon.lease_s"):
        Config.from_mapping({**base, "daemon": {"lease_s": 0.1}})
    with pytest.raises(ConfigError, match="^daemon.stop_timeout_s"):
        Config.from_mapping({**base, "daemon": {"stop_timeout_s": "10"}})


def test_metrics_per_agent_is_off_unless_asked() -> None:
    import tomllib

    from shenava.config import Config

    base = tomllib.loads('[ami]\nsecret = "x"\n')
    assert Config.from_mapping(base).metrics.per_agent is False
    on = Config.from_mapping({**base, "metrics": {"per_agent": True}})
    assert on.metrics.per_agent is True

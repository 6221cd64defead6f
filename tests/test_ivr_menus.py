"""The menu file: the shipped one loads; a broken one fails with key paths."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from ivr.errors import MenuFileError
from ivr.menu_schema import (
    Check,
    ChoiceMenu,
    EndMenu,
    NumberMenu,
    RecordMenu,
    Request,
    StatusMenu,
    Store,
    default_menu_file,
    load_menus,
    parse_menus,
)
from ivr.prompts import PromptCatalog, load_prompt_catalog

DEFAULT = tomllib.loads(default_menu_file().read_text(encoding="utf-8"))


def edited(**menus: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULT)
    for name, fields in menus.items():
        data["menus"].setdefault(name, {}).update(fields)
    return data


def problems_of(data: dict[str, Any], catalog: PromptCatalog | None = None) -> list[str]:
    with pytest.raises(MenuFileError) as caught:
        parse_menus(data, "site.toml", catalog)
    assert caught.value.code == "ivr.menu_file_invalid"
    assert str(caught.value).startswith("menu file site.toml has")
    return caught.value.problems


def test_the_shipped_menus_load() -> None:
    book = load_menus()
    menus = book.menus
    assert book.settings.languages == ("fa", "en")
    assert book.settings.default_language == "fa"
    language = menus["language"]
    assert isinstance(language, ChoiceMenu) and language.default_option == "1"
    assert language.options["1"].language == "fa" and language.options["2"].language == "en"
    main = menus["main"]
    assert isinstance(main, ChoiceMenu) and sorted(main.options) == ["1", "2", "3", "4", "5"]
    category = menus["category"]
    assert isinstance(category, ChoiceMenu)
    assert [o.category for o in category.options.values()] == [
        "service_quality", "product", "billing", "staff_conduct", "delivery", "other",
    ]
    account = menus["account"]
    assert isinstance(account, NumberMenu)
    assert account.store is Store.ACCOUNT and account.check is Check.LUHN and account.confirm
    assert isinstance(menus["status"], StatusMenu)
    assert isinstance(menus["voicemail"], RecordMenu)
    agent = menus["agent"]
    assert isinstance(agent, EndMenu) and agent.request is Request.AGENT and not agent.hangup
    assert account.limits.on_timeout == "agent"


def test_an_option_going_nowhere_is_named() -> None:
    data = edited(main={})
    data["menus"]["main"]["options"]["7"] = {"goto": "nope"}
    assert problems_of(data) == ['menus.main.options["7"]: goes to unknown menu "nope"']


def test_every_problem_is_reported_at_once() -> None:
    data = edited(
        account={"min_length": 20, "max_length": 10, "promt": "x", "check": "crc"},
        urgency={"max_timeouts": 0, "timeout_s": 0.1, "on_invalid": "void"},
        callback={"default_option": "9"},
    )
    data["menus"]["category"]["options"]["10"] = {"goto": "main"}
    data["menus"]["language"]["options"]["3"] = {"goto": "main", "language": "de"}
    data["menus"]["care"]["options"]["1"]["vulnerable"] = "yes"
    problems = problems_of(data)
    for expected in [
        "menus.account.promt: unknown key",
        "menus.account.check: must be one of none, luhn, not \"crc\"",
        "menus.account.min_length: is more than max_length (20 > 10)",
        "menus.urgency.max_timeouts: must be between 1 and 10, not 0",
        "menus.urgency.timeout_s: must be between 1 and 60, not 0.1",
        'menus.urgency.on_invalid: goes to unknown menu "void"',
        "menus.callback.default_option: \"9\" is not one of this menu's options",
        'menus.category.options["10"]: an option key is one phone key: "0"-"9", "*" or "#"',
        'menus.language.options["3"].language: "de" is not one of settings.languages',
        'menus.care.options["1"].vulnerable: must be true or false, not \'yes\'',
    ]:
        assert expected in problems, (expected, problems)


def test_a_prompt_without_text_in_a_language_is_named() -> None:
    catalog = load_prompt_catalog()
    english = catalog.languages["en"]
    texts = {k: v for k, v in english.texts.items() if k != "urgency-menu"}
    partial = PromptCatalog(MappingProxyType({
        **catalog.languages,
        "en": type(english)(
            english.language, english.name, english.espeak_voice, english.asterisk_has_digits,
            english.digits, MappingProxyType(texts),
        ),
    }))
    assert problems_of(copy.deepcopy(DEFAULT), partial) == [
        'menus.urgency.prompt: prompt "urgency-menu" has no text in en'
    ]
    data = edited(main={"intro": ["no-such-prompt"]})
    assert problems_of(data) == ['menus.main.intro[0]: prompt "no-such-prompt" has no text in fa, en']


def test_status_prompts_are_checked_too() -> None:
    data = edited(status={"statuses": ["received", "escalated"]})
    assert problems_of(data) == [
        'menus.status.statuses[1]: prompt "status-escalated" has no text in fa, en'
    ]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kind": "maze"}, "menus.main.kind: must be one of choice, number, status, record, end, not 'maze'"),
        ({"options": {}}, "menus.main.options: a choice menu needs at least one option"),
        ({"prompt": 5}, "menus.main.prompt: must be a string, not 5"),
    ],
)
def test_malformed_menus(fields: dict[str, Any], problem: str) -> None:
    assert problem in problems_of(edited(main=fields))


def test_settings_are_checked() -> None:
    data = copy.deepcopy(DEFAULT)
    data["settings"].update(default_language="de", start="welcome", languages=["fa", "en", "ar"])
    problems = problems_of(data)
    assert 'settings.default_language: "de" is not in languages' in problems
    assert 'settings.start: goes to unknown menu "welcome"' in problems
    assert 'settings.languages: no prompt texts for "ar" (add ivr/prompt_texts/ar.toml)' in problems


def test_an_end_menu_asks_for_a_known_request() -> None:
    problems = problems_of(edited(agent={"request": "teleport"}))
    assert problems == ["menus.agent.request: must be one of agent, callback, status, voicemail, not \"teleport\""]


def test_a_categories_name_is_a_plain_word() -> None:
    data = edited()
    data["menus"]["category"]["options"]["6"]["category"] = "Other\nStuff"
    assert problems_of(data) == [
        'menus.category.options["6"].category: use lower-case letters, digits and _ (it is stored and shown)'
    ]


def test_a_broken_file_is_reported_with_its_path(tmp_path: Path) -> None:
    site = tmp_path / "menus.toml"
    site.write_text("[settings\nlanguages = 1\n", encoding="utf-8")
    with pytest.raises(MenuFileError, match="not valid TOML") as caught:
        load_menus(site)
    assert caught.value.source == str(site)
    with pytest.raises(MenuFileError, match="cannot read"):
        load_menus(tmp_path / "missing.toml")


def test_a_site_file_can_change_categories(tmp_path: Path) -> None:
    text = default_menu_file().read_text(encoding="utf-8").replace(
        '6 = { category = "other", goto = "urgency" }',
        '6 = { category = "other", goto = "urgency" }\n7 = { category = "installation", goto = "urgency" }',
    )
    site = tmp_path / "menus.toml"
    site.write_text(text, encoding="utf-8")
    category = load_menus(site).menus["category"]
    assert isinstance(category, ChoiceMenu) and category.options["7"].category == "installation"

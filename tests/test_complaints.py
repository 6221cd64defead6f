"""The complaint register, pure: reference numbers, statuses, history, repeats, views."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from complaints.complaint import (
    ALLOWED_TRANSITIONS,
    Channel,
    Complaint,
    ComplaintStatus,
    add_note,
    change_status,
    complaint_from_dict,
    complaint_to_dict,
    escalate,
    link_repeat,
    needs_unresolved_callback,
    open_complaint,
    set_redress,
)
from complaints.errors import (
    InvalidReferenceError,
    InvalidStatusChangeError,
    NoteRequiredError,
    PermissionDeniedError,
)
from complaints.reference import (
    damm_valid,
    is_valid_reference,
    parse_reference,
    reference_for,
    spoken_digits,
)
from complaints.roles import (
    Actor,
    Permission,
    Role,
    complaint_view,
    export_csv,
    export_json,
    require,
)

T0 = 1_740_800_000.0
S = ComplaintStatus


def fresh(ref: str = "41415926") -> Complaint:
    return open_complaint(ref, T0, category="billing", channel=Channel.IVR, number="09121234567")


# -- references ---------------------------------------------------------------------


def test_references_are_8_digits_unique_and_checked() -> None:
    refs = [reference_for(n) for n in range(1, 20_001)]
    assert len(set(refs)) == len(refs)
    assert all(len(r) == 8 and r.isdigit() and r[0] != "0" and damm_valid(r) for r in refs)
    assert refs[1] != str(int(refs[0]) + 1)  # not guessable by adding one


@given(st.integers(min_value=1, max_value=9_000_000), st.integers(0, 7), st.integers(0, 9))
def test_any_single_wrong_digit_is_caught(serial: int, pos: int, digit: int) -> None:
    ref = reference_for(serial)
    typo = ref[:pos] + str(digit) + ref[pos + 1 :]
    assert is_valid_reference(typo) == (typo == ref)


@given(st.integers(min_value=1, max_value=9_000_000), st.integers(0, 6))
def test_any_adjacent_swap_is_caught(serial: int, pos: int) -> None:
    ref = reference_for(serial)
    swapped = ref[:pos] + ref[pos + 1] + ref[pos] + ref[pos + 2 :]
    assert is_valid_reference(swapped) == (swapped == ref)


def test_parse_reference_accepts_what_people_type() -> None:
    ref = reference_for(1)
    assert parse_reference(f" {ref[:4]}-{ref[4:]}# ") == ref
    assert spoken_digits(ref) == tuple(ref)
    for bad in ("", "1234567", "123456789", "abcdefgh", "0" * 8):
        with pytest.raises(InvalidReferenceError):
            parse_reference(bad)


# -- statuses and history --------------------------------------------------------------


def test_a_complaint_walks_its_statuses_with_history() -> None:
    c = fresh()
    c = change_status(c, S.IN_PROGRESS, T0 + 1, by="a1")
    c = add_note(c, "customer was double billed", T0 + 2, by="a1")
    c = change_status(c, S.WAITING_FOR_CUSTOMER, T0 + 3, by="a1", note="asked for the invoice")
    c = change_status(c, S.IN_PROGRESS, T0 + 4, by="a1")
    c = set_redress(c, "refund of the double charge", T0 + 5, by="sup1", amount=250000, currency="IRR")
    c = escalate(c, "billing-team", "refund over agent limit", T0 + 6, by="a1")
    c = change_status(c, S.RESOLVED, T0 + 7, by="sup1")
    c = change_status(c, S.CLOSED, T0 + 8, by="sup1")
    assert c.status is S.CLOSED and c.closed_at == T0 + 8 and c.resolved_at == T0 + 7
    assert [(h.by, h.action) for h in c.history] == [
        ("system", "opened"), ("a1", "status"), ("a1", "note"), ("a1", "status"), ("a1", "status"),
        ("sup1", "redress"), ("a1", "escalated"), ("sup1", "status"), ("sup1", "status"),
    ]
    assert c.history[3].detail == {"from": "in_progress", "to": "waiting_for_customer", "note": "asked for the invoice"}
    assert complaint_from_dict(json.loads(json.dumps(complaint_to_dict(c)))) == c


@pytest.mark.parametrize("old", list(S))
@pytest.mark.parametrize("new", list(S))
def test_only_allowed_transitions(old: ComplaintStatus, new: ComplaintStatus) -> None:
    c = replace(fresh(), status=old)
    if new is old:
        assert change_status(c, new, T0, by="x") is c
    elif new in ALLOWED_TRANSITIONS[old]:
        assert change_status(c, new, T0, by="x", note="why").status is new
    else:
        with pytest.raises(InvalidStatusChangeError):
            change_status(c, new, T0, by="x", note="why")


def test_closed_is_final_and_closing_unresolved_needs_a_note() -> None:
    c = fresh()
    with pytest.raises(NoteRequiredError):
        change_status(c, S.CLOSED, T0, by="sup1")
    closed = change_status(c, S.CLOSED, T0, by="sup1", note="duplicate of 27959136")
    assert ALLOWED_TRANSITIONS[S.CLOSED] == frozenset()
    with pytest.raises(InvalidStatusChangeError):
        change_status(closed, S.OPEN, T0, by="sup1")


def test_a_repeat_complaint_is_linked_within_the_window() -> None:
    first = fresh()
    second = open_complaint(
        "27959136", T0 + 86400, category="service", channel=Channel.IVR, number="09121234567", previous=first
    )
    assert second.repeat_of == first.reference
    linked = link_repeat(first, second, T0 + 86400)
    assert linked.repeats == ("27959136",) and linked.history[-1].action == "repeated"
    late = open_complaint(
        "14502341", T0 + 31 * 86400, category="x", channel=Channel.IVR, previous=first
    )
    assert late.repeat_of is None


def test_unresolved_callback_is_raised_once_per_age() -> None:
    c = fresh()
    assert not needs_unresolved_callback(c, T0 + 6 * 86400, 7 * 86400)
    assert needs_unresolved_callback(c, T0 + 7 * 86400, 7 * 86400)


# -- roles and export ----------------------------------------------------------------------


def test_agents_see_masked_numbers_supervisors_full() -> None:
    c = fresh()
    assert complaint_view(c, Role.AGENT)["number"] == "0912***4567"
    assert complaint_view(c, Role.SUPERVISOR)["number"] == "09121234567"
    assert complaint_view(c, Role.ADMIN)["number"] == "09121234567"
    with pytest.raises(PermissionDeniedError):
        require(Actor("a1", Role.AGENT), Permission.EXPORT)
    require(Actor("s1", Role.SUPERVISOR), Permission.EXPORT)


def test_csv_export_masks_and_defuses_formulas() -> None:
    c = add_note(fresh(), "=HYPERLINK(\"http://evil\")", T0 + 1, by="a1")
    c2 = open_complaint("27959136", T0, category="billing", channel=Channel.IVR, number="+989121234567")
    rows = list(csv.DictReader(io.StringIO(export_csv([c, c2], Role.SUPERVISOR))))
    assert rows[0]["last_note"].startswith("'=") and rows[1]["number"] == "'+989121234567"
    masked = list(csv.DictReader(io.StringIO(export_csv([c], Role.AGENT))))
    assert masked[0]["number"] == "0912***4567"
    assert json.loads(export_json([c], Role.AGENT))[0]["number"] == "0912***4567"

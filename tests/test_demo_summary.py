"""The demo's summary in words: each figure once, named, on its own scale."""

from __future__ import annotations

from shenava.demo import explain_summary


def test_the_summary_names_one_offered_count_three_service_levels_and_fairness() -> None:
    summary = {
        "duration_s": 60.0, "seed": 1, "redis": "embedded redis-server",
        "callers_placed": 7, "calls_arrived": 7, "calls_in_progress": 2,
        "ivr_outcomes": {"agent": 3, "complaint": 2}, "offered": 5, "answered": 4,
        "abandoned": 1, "waiting_now": 0, "wait_answered_avg_s": 3.25,
        "wait_answered_max_s": 22.0, "wait_abandoned_avg_s": 31.0,
        "agents": {"a1": "ready", "a2": "on_call"},
        "statistics": {
            "service_level": {
                "threshold_s": 20.0, "short_abandon_s": 5.0, "target": 0.8, "sl": 0.6,
                "app_queue_servicelevel_perf": 0.75, "app_queue_servicelevel_perf2": 0.6,
                "counted": 5, "answered": 4, "answered_in_threshold": 3,
                "abandoned_counted": 1, "abandoned_short_not_counted": 0,
            },
            "breaks": {"granted": 3, "granted_by_reason": {"break": 1, "personal": 2},
                       "waited_for_headroom": 1, "wait_max_s": 12.0, "wait_mean_s": 4.0,
                       "forced_at_max_wait": 0, "line_now": 0, "fairness_index": 0.8731},
            "wellbeing_alerts": 0,
        },
        "callbacks": {"open": 1, "closed": 0, "attempts": 0},
        "voicemail": {"recorded": 1, "pending": 1},
    }
    text = "\n".join(explain_summary(summary))
    assert text.count("offered") == 1 and "5 offered (joined the line)" in text
    assert "SL    60.0%  answered within 20 s over answered + abandoned (3 of 5)" in text
    assert "ServicelevelPerf:" in text and "ServicelevelPerf2:" in text
    assert "Break fairness: 0.87 on a 0-1 scale" in text
    assert "87" not in text.replace("0.87", "")  # never as a percentage
    assert "warn" not in text.lower() and "error" not in text.lower()

"""What the DCS history keeps (dcs/history.py), over any mix of events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.dcs.history import protected, to_delete

kinds = st.sampled_from([{"action": "galera"}, {"action": "join"}, {"action": "force"},
                         {"action": "roll", "inputs": {"aborted": True}}, {"action": "roll", "inputs": {}}])


@given(st.lists(kinds, max_size=60), st.integers(0, 20), st.integers(0, 20))
def test_trimming_keeps_the_newest_and_every_protected_event(events: list[dict], keep: int, notes: int) -> None:
    entries = [(f"history/{index:05d}", event) for index, event in enumerate(events)]
    doomed = set(to_delete(entries, keep, notes))
    kept = [(key, event) for key, event in entries if key not in doomed]
    assert all(key not in doomed for key, event in entries if protected(event))
    kept_notifications = [key for key, event in kept if event["action"] == "galera"]
    kept_unprotected = [key for key, event in kept if not protected(event)]
    assert len(kept_notifications) <= notes and len(kept_unprotected) <= keep
    for key in doomed:  # each went because enough newer ones of its kind stay
        newer_notifications = [k for k in kept_notifications if k > key]
        newer = [k for k in kept_unprotected if k > key]
        assert (dict(entries)[key]["action"] == "galera" and len(newer_notifications) == notes) or len(newer) == keep
    assert to_delete(kept, keep, notes) == []

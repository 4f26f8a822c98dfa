"""freshness.py: liveness by record versions on our own clock, and the skew estimate (issue 19)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.routing.freshness import SKEW_WARNING, ChangeClock, own_skew, skew_warning


def test_a_record_is_fresh_while_its_version_changes_whatever_time_it_carries() -> None:
    clock = ChangeClock()
    for step in range(10):  # node2 writes a record every second, stamped 30 s in the future
        clock.observe({"node2": step + 1}, {"node2": 1030.0 + step}, mono_now=float(step), wall_now=1000.0 + step)
        assert clock.fresh("node2", float(step) + 2.9, 3.0)
    # node2's agent dies: its record stays (until the TTL), with the same version.
    for later in (10.0, 11.0, 12.0, 12.5):
        clock.observe({"node2": 10}, {"node2": 1039.0}, mono_now=later, wall_now=1000.0 + later)
    assert not clock.fresh("node2", 12.5, 3.0), "an unchanged record is stale after fresh_within, by our clock"
    assert clock.age("node2", 12.5) == 3.5


def test_a_first_sight_counts_as_a_change_and_a_gone_record_is_forgotten() -> None:
    clock = ChangeClock()
    clock.observe({"node2": 7}, {"node2": 1.0}, mono_now=100.0, wall_now=5.0)
    assert clock.fresh("node2", 103.0, 3.0) and not clock.fresh("node2", 103.1, 3.0)
    assert clock.offsets("node1") == {}, "a record first seen may be old: it gives no offset sample"
    clock.observe({"node2": 8}, {"node2": 0.0}, mono_now=101.0, wall_now=6.0)
    assert clock.offsets("node1") == {}, "a record without a time gives no offset sample"
    clock.observe({}, {}, mono_now=104.0, wall_now=9.0)
    assert clock.age("node2", 104.0) is None and not clock.fresh("node2", 104.0, 3.0)
    clock.observe({"node2": 7}, {"node2": 0.0}, mono_now=105.0, wall_now=10.0)
    assert clock.fresh("node2", 105.0, 3.0), "a record that comes back is new"


@given(mine=st.floats(-100, 100), theirs=st.lists(st.floats(-100, 100), min_size=2, max_size=6),
       delays=st.lists(st.floats(0, 0.5), min_size=10, max_size=10))
def test_the_skew_estimate_is_within_the_publication_delay(mine: float, theirs: list[float],
                                                          delays: list[float]) -> None:
    """Every member's record is read `delay` after it was written; our estimate of each peer's offset is off
    by at most the smallest delay seen (the first sight gives no sample: the record may be old), and our
    own skew is minus the median offset (us counting as 0)."""
    clock = ChangeClock()
    names = [f"node{i}" for i in range(2, 2 + len(theirs))]
    for version, delay in enumerate(delays, start=1):
        real = 1000.0 + version
        clock.observe({n: version for n in names},
                      {n: real + offset for n, offset in zip(names, theirs, strict=True)},
                      mono_now=float(version) + delay, wall_now=real + delay + mine)
    offsets = clock.offsets("node1")
    for name, offset in zip(names, theirs, strict=True):
        assert abs(offsets[name] - (offset - mine)) <= min(delays[1:]) + 1e-6
    skew = clock.skew("node1")
    assert skew is not None
    expected = own_skew({n: o - mine for n, o in zip(names, theirs, strict=True)})
    assert expected is not None and abs(skew - expected) <= min(delays[1:]) + 1e-6


def test_one_skewed_bystander_does_not_make_the_others_look_skewed() -> None:
    assert own_skew({"node2": 30.0, "node3": 0.1}) == -0.1
    assert own_skew({"node1": -30.0, "node2": -30.0}) == 30.0, "the skewed host sees itself against the rest"
    assert own_skew({}) is None


def test_skew_warning_above_the_threshold_only() -> None:
    assert skew_warning(None) == "" and skew_warning(SKEW_WARNING) == ""
    assert "30.0 s ahead of" in skew_warning(30.0)
    assert "30.0 s behind" in skew_warning(-30.0)

"""The fast validation walk agrees with the exact one on every report.

validate_request asks the fast walk (within_limits) whether a report is
fine and only runs the exact walk (first_problem) to word the refusal, so
the two must never disagree: a report the exact walk would refuse must not
slip through the fast one.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.realistic import report as realistic_report
from dcguard.collector.receive.validate_walk import first_problem, within_limits
from dcguard.v1 import collector_pb2 as pb

# Short strings that may hold a NUL, so both bounds are exercised at small limits.
_text = st.text(alphabet=st.sampled_from("ab\0é"), max_size=6)


@st.composite
def reports(draw: st.DrawFn) -> pb.Report:
    r = pb.Report(sequence=1)
    for _ in range(draw(st.integers(0, 3))):
        r.sources.add(name=draw(_text), error=draw(_text))
    if draw(st.booleans()):
        r.host.cpu_count = 2
    for _ in range(draw(st.integers(0, 3))):
        r.filesystems.add(mountpoint=draw(_text), device=draw(_text), fstype=draw(_text))
    for _ in range(draw(st.integers(0, 2))):
        d = r.disks.add(device=draw(_text), model=draw(_text))
        for _ in range(draw(st.integers(0, 3))):
            d.attributes.add(id=1, name=draw(_text))
    for _ in range(draw(st.integers(0, 2))):
        r.raid_arrays.add(name=draw(_text), members=draw(st.lists(_text, max_size=4)))
    for _ in range(draw(st.integers(0, 2))):
        r.backups.add(job=draw(_text), shared_disks=draw(st.lists(_text, max_size=3)))
    for _ in range(draw(st.integers(0, 5))):
        e = r.events.add(type=draw(_text), raw=draw(_text), tags=draw(st.lists(_text, max_size=3)))
        e.details.update(draw(st.dictionaries(_text, _text, max_size=3)))
    return r


@settings(max_examples=500, deadline=None)
@given(reports(), st.integers(0, 6), st.integers(0, 4))
def test_fast_walk_refuses_exactly_what_the_exact_walk_refuses(report, max_string, max_entries):
    problem = first_problem(report, max_string, max_entries, "report")
    assert within_limits(report, max_string, max_entries) == (problem is None)


def test_a_realistic_report_is_within_the_default_limits():
    report = realistic_report(1)
    assert within_limits(report, 4096, 1024)
    report.disks[3].attributes[4].name = "x\0"
    assert not within_limits(report, 4096, 1024)
    assert first_problem(report, 4096, 1024, "report") == (
        "report.disks.attributes.name is longer than 4096 or contains NUL"
    )


def test_first_reports_arriving_together_all_see_complete_plans(monkeypatch):
    """The first Submits after start build the plans while others read them (a real race, seen
    under load as UNKNOWN: '_Plan' object has no attribute 'counted')."""
    import sys
    import threading

    from dcguard.collector.receive import validate_walk

    failures: list[BaseException] = []
    verdicts: list[bool] = []
    for _ in range(20):
        monkeypatch.setattr(validate_walk, "_plans", {})
        start = threading.Barrier(8)

        def check(start: threading.Barrier = start) -> None:
            report = realistic_report(1)
            start.wait()
            try:
                verdicts.append(within_limits(report, 4096, 1024))
            except BaseException as exc:  # noqa: BLE001 - the race shows as any exception
                failures.append(exc)

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible
        try:
            threads = [threading.Thread(target=check) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
        finally:
            sys.setswitchinterval(interval)
    assert failures == []
    assert verdicts == [True] * 160

"""benchmarks.reference: the same-run speed reference and the machine's busy and steal shares."""

from __future__ import annotations

from benchmarks.reference import ReferenceProbe, busy_and_steal_shares, cpu_ticks


def test_shares_count_idle_and_iowait_as_not_busy() -> None:
    # user nice system idle iowait irq softirq steal
    before = [100, 0, 50, 1000, 10, 0, 5, 0]
    after = [160, 0, 70, 1090, 20, 0, 10, 10]  # 60+20+90+10+5+10 = 195 ticks
    busy, steal = busy_and_steal_shares(before, after)
    assert busy == (195 - 100) / 195
    assert steal == 10 / 195


def test_shares_unknown_without_counters_or_elapsed_ticks() -> None:
    ticks = [1, 2, 3, 4, 5, 6, 7, 8]
    assert busy_and_steal_shares(None, ticks) == (None, None)
    assert busy_and_steal_shares(ticks, None) == (None, None)
    assert busy_and_steal_shares(ticks, list(ticks)) == (None, None)


def test_probe_reports_speed_and_shares() -> None:
    with ReferenceProbe(period_s=0.01, verifies=5) as probe:
        spin_until = sum(range(200_000))  # some work, so the window has ticks
    assert spin_until > 0
    result = probe.result()
    assert result.samples >= 2 and 0 < result.verify_us_min <= result.verify_us_median
    assert result.probe_cpu_s > 0
    assert cpu_ticks() is not None  # Linux: the counters are there
    report = result.to_json()
    assert set(report) >= {"host_busy_share", "host_steal_share"}

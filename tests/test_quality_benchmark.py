"""benchmarks/quality.py's reporting: time to target, excess over the floor and the tables, on made-up scores (no training),
and its command line's help and bad options."""
import math, statistics, sys
import pytest
from conftest import ROOT, run

sys.path.insert(0, str(ROOT / "benchmarks"))
import quality as q


def test_time_to_target_interpolates_between_the_neighbouring_copies():
    # 30 at 0.1, 20 at 0.2: 25 is half-way, at 0.15
    assert q.time_to_target([0.05, 0.1, 0.2, 1.0], [40, 30, 20, 15], 25) == pytest.approx(0.15, rel=1e-12)
    # a point exactly on the target is its own fraction
    assert q.time_to_target([0.05, 0.1, 0.2, 1.0], [40, 30, 20, 15], 20) == pytest.approx(0.2, rel=1e-12)


def test_time_to_target_is_the_first_crossing_of_a_curve_that_rises_again():
    # below 25 first between 0.05 (40) and 0.1 (20): 0.05 + 15/20 × 0.05; the rise to 30 and the fall after it do not count
    assert q.time_to_target([0.05, 0.1, 0.2, 1.0], [40, 20, 30, 10], 25) == pytest.approx(0.0875, rel=1e-12)


def test_time_to_target_at_the_first_copy_and_never():
    fr = [0.05, 0.1, 1.0]
    first = q.time_to_target(fr, [10, 9, 8], 12)
    assert first == 0.05 and q.show_time(first, 0.05) == "≤ 0.050" and q.verdict(first, 0.2).startswith("met")
    never = q.time_to_target(fr, [40, 30, 20], 15)
    assert never == math.inf and q.show_time(never, 0.05) == "> 1 (not reached)" and q.verdict(never, 0.2) == "not met"
    assert q.show_time(0.1375, 0.05) == "0.138"


def test_excess_over_floor_from_the_means_with_the_paired_draws_spread():
    value, sd = q.excess_over_floor([12, 13, 14], [20, 22, 24], 10)
    assert value == pytest.approx(3 / 12, rel=1e-12)  # (13 − 10) / (22 − 10)
    assert sd == pytest.approx(statistics.stdev([2 / 10, 3 / 12, 4 / 14]), rel=1e-12)
    value, sd = q.excess_over_floor([12, 13, 14], [9, 10, 11], 10)  # the baseline at the floor: no ratio
    assert math.isnan(value) and math.isnan(sd) and q.verdict(value, 0.3) == "not measurable"


def test_verdict_states_the_margin():
    assert q.verdict(0.15, 0.2) == "met, 0.050 under"
    assert q.verdict(0.35, 0.3) == "not met, 0.050 over"
    assert q.verdict(0.3, 0.3) == "met, 0.000 under"


def made_up_budget(minutes, curve_means, base, floor=10.0):
    "What `measure_budget` returns, with draws mean − 1, mean, mean + 1 (sd 1) at each of `FRACTIONS`."
    run_ = lambda steps: dict(steps=steps, max_steps=steps + 50, copy_s=0.01)
    curve = [dict(fraction=f, time_fraction=f, step=int(1000 * f), fids=[m - 1, m, m + 1]) for f, m in zip(q.FRACTIONS, curve_means)]
    return dict(minutes=minutes, n=200, runs=dict(ours=run_(1000), baseline=run_(4000)), curve=curve, baseline=[base - 1, base, base + 1],
                floors=[floor] * (3 * len(q.FRACTIONS) + 3), train_wall=60, score_wall=60, sample_s=dict(ours=[1.0] * 3 * len(q.FRACTIONS), baseline=[1.0] * 3), images=200 * (3 * len(q.FRACTIONS) + 3))


def test_tables_have_a_row_per_budget_and_per_copy(tmp_path):
    assert q.FRACTIONS == (0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
    # 4 min: ours reaches 30 (the baseline's end) half-way between 0.15 (35) and 0.2 (25); ends at 13: (13 − 10) / (30 − 10) = 0.15
    fast = made_up_budget(4, [50, 35, 25, 20, 16, 13], base=30)
    # 16 min: ours never reaches the baseline's 12; (14 − 10) / (12 − 10) = 2
    slow = made_up_budget(16, [50, 40, 30, 25, 20, 14], base=12)
    r = q.budget_rows(fast)
    assert r["time_to_target"] == pytest.approx(0.175, rel=1e-12) and r["excess"] == pytest.approx(0.15, rel=1e-12)
    assert r["floor"] == 10 and r["floor_varies"] == 0 and r["base_sd"] == pytest.approx(1.0) and r["ours"] == 13
    summary = q.summary_table([fast, slow], "DDIM-50").splitlines()
    assert len(summary) == 4 and "(target ≤ 0.2)" in summary[0] and "(target ≤ 0.3)" in summary[0]
    assert summary[2].startswith("| 4 min | 1,000 of 1,050 | 4,000 of 4,050 | 30.00 ± 1.00 | 13.00 ± 1.00 | 10.00 |")
    assert "0.175 (met, 0.025 under)" in summary[2] and "0.150 ± " in summary[2] and "(met, 0.150 under)" in summary[2]
    assert "> 1 (not reached) (not met)" in summary[3] and "2.000 ± " in summary[3] and "(not met, 1.700 over)" in summary[3]
    curve = q.curve_table([fast, slow]).splitlines()
    assert len(curve) == 2 + 2 * len(q.FRACTIONS)
    assert curve[2] == "| 4 min | 0.1 | 0.100 | 100 | 49.00 / 50.00 / 51.00 | 50.00 ± 1.00 |"
    assert curve[-1] == "| 16 min | 1 | 1.000 | 1,000 | 13.00 / 14.00 / 15.00 | 14.00 ± 1.00 |"
    path = q.figure([fast, slow], tmp_path / "q.png", "DDIM-50")
    assert path.stat().st_size > 10_000


def test_default_sampler_is_ddim_50_with_the_clipped_pairing():
    class A: sampler, steps, eta, pairing = q.SAMPLER[0], q.SAMPLER[1], None, None
    s = q.sampler_options(None, A)
    assert s == dict(sampler="ddim", steps=50, eta=0.0, clipped=True)
    assert q.sampler_text(s) == "DDIM-50 (η = 0, ε̂ from clipped x̂0)"
    assert q.sampler_text(dict(sampler="unipc", steps=20, eta=None, clipped=None)) == "unipc-20"


def test_help_and_an_option_the_sampler_does_not_take():
    p = run([sys.executable, ROOT / "benchmarks" / "quality.py", "--help"])
    assert "--sampler" in p.stdout and "--pairing" in p.stdout and "time to target" in p.stdout.lower()
    p = run([sys.executable, ROOT / "benchmarks" / "quality.py", "--sampler", "euler", "--pairing", "model"], check=False)
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1] == "quality.py: error: --pairing applies only to --sampler ddim, not euler"

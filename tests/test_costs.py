"""Job costs read from Snakemake's benchmark files: sums per rule and paper, unmeasured memory."""

from __future__ import annotations

import math

from lorarepro.records import write_run
from lorarepro.report.costs import benchmark_records, job_costs, per_paper, per_rule

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, seconds, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t0\t0\n")


def test_costs_sum_per_rule_and_paper(tmp_path):
    rules = tmp_path / "rules"
    _bench(rules / "nora" / "fig1a.tsv", 11.0, 300.0)
    _bench(rules / "nora" / "figure_1a.tsv", 2.0, "-")  # too short for Snakemake to sample memory
    _bench(rules / "deep_lora" / "fig2" / "d=200_L=2.tsv", 5.0, 100.0)
    _bench(rules / "deep_lora" / "fig2" / "d=200_L=3.tsv", 7.0, 150.0)
    _bench(rules / "index_report.tsv", 1.0, 50.0)

    jobs = job_costs(rules)
    assert len(jobs) == 5 and math.isnan(jobs.set_index("rule").loc["figure_1a", "max_rss_mb"])
    by_rule = per_rule(jobs).set_index(["paper", "rule"])
    assert by_rule.loc[("deep_lora", "fig2"), "jobs"] == 2
    assert by_rule.loc[("deep_lora", "fig2"), "wall_s"] == 12.0
    assert by_rule.loc[("deep_lora", "fig2"), "max_rss_mb"] == 150.0
    papers = per_paper(jobs).set_index("paper")
    assert list(papers.index) == ["nora", "deep_lora", "workflow"]  # costliest first
    assert papers.loc["nora", "wall_s"] == 13.0 and papers.loc["nora", "max_rss_mb"] == 300.0
    assert papers.loc["nora", "costliest_rule"] == "fig1a"
    assert papers.loc["workflow", "costliest_rule"] == "index_report"


def test_benchmark_records_are_read_beside_the_rule_timings(tmp_path):
    _bench(tmp_path / "rules" / "nora" / "fig1a.tsv", 1.0, 1.0)
    assert benchmark_records(tmp_path).empty
    write_run(tmp_path / "batched_seeds" / "nora_fig1a", paper="benchmarks", experiment="batched_seeds",
              method="nora_fig1a", seed=0, scale="default", params={}, metrics={"speedup": 4.8}, runtime={})
    records = benchmark_records(tmp_path)
    assert records["experiment"].tolist() == ["batched_seeds"] and records["metrics.speedup"].tolist() == [4.8]

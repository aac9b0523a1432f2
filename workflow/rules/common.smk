# Helpers shared by all rule files (validated config, per-scale settings, resources, output registry).
import json
import sys
from pathlib import Path

from snakemake.io import report as report_output  # `report(` is a keyword inside .smk files

# The library lives in src/; the driver process imports it from there, so `snakemake` works from a
# checkout even where the package is not installed (jobs use the installed package or conda env).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from lorarepro.config import (  # noqa: E402
    ConfigError,
    PAPERS,
    experiment_settings,
    format_setting,
    seeds_of,
    validate_config,
)
from lorarepro.data.catalog import DATASETS  # noqa: E402
from lorarepro.experiments.leaderboard.grid import PAPER as LEADERBOARD  # noqa: E402
from lorarepro.experiments.leaderboard.grid import job_settings as leaderboard_job_settings  # noqa: E402
from lorarepro.models.catalog import MODELS  # noqa: E402

try:
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas")
except ConfigError as err:
    raise WorkflowError(str(err)) from None

SCALE = config["scale"]
DATA_SOURCE = {"auto": "hub" if SCALE == "paper" else "bundled"}.get(config["data"]["source"], config["data"]["source"])
ENABLED_PAPERS = config["papers"]
FIGURE_FORMATS = config["report"]["figure_formats"]
# Conda envs (used with --sdm conda); each pip-installs this package at the pinned versions.
ENV_CPU = "../../envs/cpu.yaml"
ENV_GPU = "../../envs/gpu.yaml"
ENV_REPORT = "../../envs/report.yaml"


# ----------------------------------------------------------------------------------------------
# Settings
def settings(paper, experiment):
    """Settings of one experiment at the active scale (config `common` merged with the scale block);
    for the leaderboard, its settings for one task's job."""
    if paper == LEADERBOARD:
        return leaderboard_job_settings(config, experiment)
    return experiment_settings(config, paper, experiment)


def seeds(paper, experiment):
    return seeds_of(settings(paper, experiment))


def as_json(obj):
    """Parameters go to scripts as one JSON argument (quote it with `{params.x:q}`)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def run_params(paper, experiment, **extra):
    """The JSON every experiment script receives: its settings, the scale, the device, and extras."""
    return as_json({**settings(paper, experiment), **extra, "scale": SCALE, "device": config["device"]})


# ----------------------------------------------------------------------------------------------
# Resources: the scale's defaults (config `resources`), overridden per experiment by its own
# `resources` block; memory and time grow with the retry attempt.
_BASE_RESOURCES = {
    "smoke": {"mem_mb": 2000, "runtime": 10, "gpu": 0, "threads": 1},
    "default": {"mem_mb": 4000, "runtime": 60, "gpu": 0, "threads": 1},
    "paper": {"mem_mb": 16000, "runtime": 240, "gpu": 0, "threads": 4},
}


def _resources(paper=None, experiment=None):
    res = {**_BASE_RESOURCES[SCALE], **config.get("resources", {}).get(SCALE, {})}
    if paper and experiment:
        res.update(settings(paper, experiment).get("resources", {}))
    return res


def threads_for(paper=None, experiment=None):
    return _resources(paper, experiment)["threads"]


def mem_mb_for(paper=None, experiment=None):
    base = _resources(paper, experiment)["mem_mb"]

    def mem_mb(wildcards, attempt):
        return base * attempt

    return mem_mb


def runtime_for(paper=None, experiment=None):
    base = _resources(paper, experiment)["runtime"]

    def runtime(wildcards, attempt):
        return base * attempt

    return runtime


def gpu_for(paper=None, experiment=None):
    return _resources(paper, experiment)["gpu"]


def gpu_model_for(paper=None, experiment=None):
    return _resources(paper, experiment).get("gpu_model", "")


# On a cluster, thousands of second-long jobs would each cost a submission and a queue wait:
# profiles/slurm packs them into group jobs (`group-components`). Local runs ignore groups.
SMALL_RUNS_GROUP = "small_runs"  # CPU experiment jobs
SUMMARIES_GROUP = "summaries"  # figures and tables drawn from run records


def group_for(paper=None, experiment=None):
    """A CPU experiment joins the small-runs group; a job that asks for a GPU is submitted alone."""
    return None if gpu_for(paper, experiment) else SMALL_RUNS_GROUP


# ----------------------------------------------------------------------------------------------
# Data and models
OFFLINE_DATASETS = ["stsb", "stsb_paraphrase", "stsb_choice", "rotten_tomatoes", "rt_subjectivity", "mnist5k", "digits"]
OFFLINE_MODELS = ["minilm_l6", "smollm2_135m"]


def hub_override(wildcards):
    """A user's replacement hub location (or local file) for one data set, as JSON."""
    return as_json(config["data"].get("hub_overrides", {}).get(wildcards.dataset, {}))


# ----------------------------------------------------------------------------------------------
# Paths
def dataset_dir(name):
    return f"resources/data/{name}"


def model_dir(name):
    return f"resources/models/{name}"


def figure_files(paper, stem):
    """A figure in every configured format: results/<paper>/figures/<stem>.<fmt>.

    The PNG is marked for `snakemake --report`, filed under the paper and the figure.
    """
    return [
        report_output(path, category=paper, subcategory=stem) if fmt == "png" else path
        for fmt in FIGURE_FORMATS
        for path in [f"results/{paper}/figures/{stem}.{fmt}"]
    ]


def run_records(paper, experiment, methods_settings, seed_list):
    """metrics.json paths for every (method, setting) pair and seed of an experiment."""
    return [
        f"results/{paper}/{experiment}/{method}/{setting}/seed={seed}/metrics.json"
        for method, setting in methods_settings
        for seed in seed_list
    ]


# ----------------------------------------------------------------------------------------------
# Output registry: each paper's rule file registers its records, tables and figures; claims,
# reports and the named targets read them from here.
OUTPUTS = {paper: {"records": [], "tables": [], "figures": []} for paper in PAPERS}


def register(paper, *, records=(), tables=(), figures=()):
    OUTPUTS[paper]["records"].extend(records)
    OUTPUTS[paper]["tables"].extend(tables)
    OUTPUTS[paper]["figures"].extend(figures)


def paper_records(paper):
    return OUTPUTS[paper]["records"]


def paper_products(paper):
    """Tables and figures of one paper (what `regenerate_paper_figures` builds)."""
    return OUTPUTS[paper]["tables"] + OUTPUTS[paper]["figures"]


def report_targets():
    return [f"reports/{paper}.html" for paper in ENABLED_PAPERS] + ["reports/index.html"]


def all_targets():
    """Every report, the leaderboard, and (offline) every bundled asset, so one run prepares the machine completely."""
    assets = [dataset_dir(d) for d in OFFLINE_DATASETS] + [model_dir(m) for m in OFFLINE_MODELS]
    return report_targets() + leaderboard_products() + (assets if DATA_SOURCE == "bundled" else [])


def paper_records_of(wildcards):
    return paper_records(wildcards.paper)


for _paper in PAPERS:

    include: f"common/{_paper}.smk"


def paper_products_of(wildcards):
    return paper_products(wildcards.paper)


def report_spec_of(wildcards):
    """The paper's report text, if it has one yet (the report renders claims either way)."""
    path = Path(workflow.basedir) / "workflow" / "report" / f"{wildcards.paper}.yaml"
    return [str(path.relative_to(workflow.basedir))] if path.exists() else []

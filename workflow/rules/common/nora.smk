# Helper functions of the nora rules (kept apart from rules, as the Snakemake linter asks).
from lorarepro.experiments.nora.grid import runs as nora_grid

NORA_EXPERIMENTS = ["fig1a", "fig1b", "fig1c", "asymmetric"]
# Each figure and the experiments it is drawn from; the tables draw on all of them.
NORA_FIGURES = {"figure_1a": ["fig1a"], "figure_1b": ["fig1b"], "figure_1c": ["fig1c"]}
NORA_TABLES = ["table_1", "table_asym_one_step"]


def nora_runs(experiment):
    """(method, setting folder) of every run of an experiment at this scale."""
    return [(method, setting) for method, setting, _ in nora_grid(settings("nora", experiment))]


def nora_records(*experiments, name="metrics.json"):
    """The run files (metrics.json, or trace.parquet) of every run and seed of the experiments."""
    return [
        path.replace("metrics.json", name)
        for experiment in experiments
        for path in run_records("nora", experiment, nora_runs(experiment), seeds("nora", experiment))
    ]

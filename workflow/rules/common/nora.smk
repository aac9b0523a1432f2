# Helper functions of the nora rules (kept apart from rules, as the Snakemake linter asks).
from lorarepro.experiments.nora.grid import lm_runs as nora_lm_grid
from lorarepro.experiments.nora.grid import lm_tasks as nora_lm_tasks
from lorarepro.experiments.nora.grid import runs as nora_grid

# Matrix factorization (one job per experiment) and language models (one job per task x method).
NORA_MF_EXPERIMENTS = ["fig1a", "fig1b", "fig1c", "asymmetric"]
NORA_LM_EXPERIMENTS = ["table4", "table2"]
NORA_EXPERIMENTS = NORA_MF_EXPERIMENTS + NORA_LM_EXPERIMENTS
# Each figure, and the experiments it is drawn from; the tables of the matrix-factorization runs
# (drawn from all of them at once), and each language-model table's experiment.
NORA_MF_FIGURES = {"figure_1a": ["fig1a"], "figure_1b": ["fig1b"], "figure_1c": ["fig1c"]}
NORA_FIGURES = {**NORA_MF_FIGURES, "figure_2": ["table4"]}
NORA_MF_TABLES = ["table_1", "table_asym_one_step"]
NORA_LM_TABLES = {"table_2": "table2", "table_4": "table4"}


def nora_runs(experiment):
    """(method, setting folder) of every run of an experiment at this scale."""
    if experiment in NORA_LM_EXPERIMENTS:
        return [(method, setting) for method, _, setting in nora_lm_grid(settings("nora", experiment))]
    return [(method, setting) for method, setting, _ in nora_grid(settings("nora", experiment))]


def nora_lm_jobs(experiment):
    """(job name, its tasks, its run folders as (method, setting)) of every language-model job: one job
    per task runs every method and seed; with `train_once` (tasks that share a training set), one job
    per method runs its seeds, each trained once and scored on every task."""
    config_of = settings("nora", experiment)
    jobs = {}
    for method, task, setting in nora_lm_grid(config_of):
        tasks, runs = jobs.setdefault(method if config_of.get("train_once") else task, ([], []))
        tasks.append(task)
        runs.append((method, setting))
    return [(name, list(dict.fromkeys(tasks)), runs) for name, (tasks, runs) in jobs.items()]


def nora_lm_assets(experiment, tasks):
    """The data sets and pretrained model a language-model job reads (the DAG materialises them first):
    the first task's under `data` (its folder names the data root), the other tasks' under `more_data`."""
    config_of = settings("nora", experiment)
    folders = list(dict.fromkeys(dataset_dir(nora_lm_tasks(config_of)[task]["dataset"]) for task in tasks))
    assets = {"data": folders[0], "model": model_dir(config_of["model"]["name"])}
    return {**assets, "more_data": folders[1:]} if len(folders) > 1 else assets


def nora_job_records(experiment, runs, name="metrics.json"):
    """The run files of one job: every seed of each (method, setting) in `runs`."""
    return [path.replace("metrics.json", name) for path in run_records("nora", experiment, runs, seeds("nora", experiment))]


def nora_records(*experiments, name="metrics.json"):
    """The run files (metrics.json, or trace.parquet) of every run and seed of the experiments."""
    return [
        path.replace("metrics.json", name)
        for experiment in experiments
        for path in run_records("nora", experiment, nora_runs(experiment), seeds("nora", experiment))
    ]


def nora_lm_params(experiment):
    """The settings JSON of a language-model job, behind a function: its prompt templates hold `{...}`
    fields that Snakemake would otherwise read as wildcards."""
    cfg = run_params("nora", experiment)

    def params(wildcards):
        return cfg

    return params

# Helper functions of the leaderboard rules (kept apart from rules, as the Snakemake linter asks).
from lorarepro.experiments.leaderboard import grid as leaderboard_grid

try:
    LEADERBOARD_SETTINGS = leaderboard_grid.leaderboard_settings(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

LEADERBOARD_TASKS = list(LEADERBOARD_SETTINGS.get("tasks", {}))
LEADERBOARD_TABLES = [f"results/leaderboard/{name}.csv" for name in ("leaderboard", "average_rank", "learning_rates", "budget")]
LEADERBOARD_FIGURE = figure_files("leaderboard", "leaderboard")


def leaderboard_records(task, name="metrics.json"):
    """Every run file (metrics.json or trace.parquet) of one task's job."""
    return leaderboard_grid.run_records(LEADERBOARD_SETTINGS, task, name)


def leaderboard_assets(task):
    """The data set and model folders a task's job reads (materialised first)."""
    spec = LEADERBOARD_SETTINGS["tasks"][task]
    return {"data": dataset_dir(spec["task"]["dataset"]), "model": model_dir(spec["model"]["name"])}


def leaderboard_priority(task):
    """Jobs without a cache (the decoder's) are the longest: start them first, so that the others
    fill the second core around them."""
    return 0 if LEADERBOARD_SETTINGS["tasks"][task].get("cache_lower_layers") else 1


def leaderboard_products():
    """The leaderboard's tables and figure (its target; part of `all` and of the index report)."""
    return LEADERBOARD_TABLES + LEADERBOARD_FIGURE if LEADERBOARD_TASKS else []


def verbatim(text):
    """A params function: Snakemake formats params strings, which would read a prompt template's
    `{sentence1}` as a wildcard; a function's value is passed as it is."""

    def value(wildcards):
        return text

    return value

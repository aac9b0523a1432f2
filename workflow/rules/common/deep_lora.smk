# Helper functions of the deep_lora rules (kept apart from rules, as the Snakemake linter asks).
DEEP_LORA = "deep_lora"
# Figure number -> the experiment whose records it draws.
DEEP_LORA_FIGURES = {"2": "fig2", "3": "fig3", "4": "fig4", "5": "fig5", "9": "fig9", "10": "fig10"}


def deep_lora_env(experiment):
    """The GPU environment where the experiment asks for a GPU at this scale, else the CPU one."""
    return ENV_GPU if gpu_for(DEEP_LORA, experiment) else ENV_CPU


def deep_lora_runs(experiment, method=None):
    """The (method, setting) pairs an experiment records (only `method`'s, if given)."""
    cfg = settings(DEEP_LORA, experiment)
    if experiment == "fig2":  # one method per depth, swept over widths
        runs = [(m, format_setting({"width": w})) for m in cfg["methods"] for w in cfg["widths"]]
    elif experiment in ("fig4", "fig5"):  # the original and one compressed run per γ
        runs = [("original", "base")] + [("compressed", format_setting({"gamma": float(g)})) for g in cfg["gammas"]]
    elif experiment == "fig10":  # compressed and narrow per overestimated rank
        runs = [(m, format_setting({"rank_hat": r})) for r in cfg["ranks"] for m in ("compressed", "narrow")]
    else:
        runs = [({"fig3": "gd", "fig9": "relu"}[experiment], "base")]
    if method is None:
        return runs
    return [(method, setting) for setting in dict.fromkeys(s for _, s in runs)]


def deep_lora_records(experiment, runs=None):
    """metrics.json of every run (or the given runs) of an experiment, for every seed."""
    return run_records(DEEP_LORA, experiment, runs or deep_lora_runs(experiment), seeds(DEEP_LORA, experiment))


def deep_lora_fig2_params(wildcards):
    return run_params(DEEP_LORA, "fig2", method=wildcards.method)


def deep_lora_figure_records():
    """The records of every experiment a figure draws."""
    return [r for exp in DEEP_LORA_FIGURES.values() for r in deep_lora_records(exp)]


def deep_lora_figure_files():
    return [f for n in DEEP_LORA_FIGURES for f in figure_files(DEEP_LORA, f"figure_{n}")]

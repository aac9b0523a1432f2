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


# ---- language-model fine-tuning (Figures 6, 7, 8, Table 2) ----------------------------------------
DEEP_LORA_LM_FIGURES = ["6", "7", "8"]
DEEP_LORA_TABLE_2 = "results/deep_lora/tables/table_2.csv"


def deep_lora_fewshot_settings():
    """The (n, r) pairs run: Figure 6's sweep of n at `rank` and Figure 8's sweep of r at `rank_n`."""
    cfg = settings(DEEP_LORA, "fewshot")
    pairs = [(n, cfg["rank"]) for n in cfg["ns"]] + [(cfg["rank_n"], r) for r in cfg["ranks"]]
    return list(dict.fromkeys(pairs))


def deep_lora_fewshot_records(method=None):
    """metrics.json of every few-shot run (or only `method`'s, at wildcard n and r)."""
    cfg = settings(DEEP_LORA, "fewshot")
    if method is not None:
        runs = [(method, "n={n}_r={r}")]
    else:
        runs = [(m, format_setting({"n": n, "r": r})) for m in cfg["methods"] for n, r in deep_lora_fewshot_settings()]
    return run_records(DEEP_LORA, "fewshot", runs, seeds(DEEP_LORA, "fewshot"))


def deep_lora_lm_assets(experiment):
    """The data set and (when bundled) the model an engine experiment reads, so the DAG builds them first."""
    cfg = settings(DEEP_LORA, experiment)
    name = cfg["model"]["name"]
    return [dataset_dir(cfg["task"]["dataset"])] + ([model_dir(name)] if name in OFFLINE_MODELS else [])


def deep_lora_lm_figure_files():
    return [f for n in DEEP_LORA_LM_FIGURES for f in figure_files(DEEP_LORA, f"figure_{n}")]

# Helper functions of the lora_one rules (kept apart from rules, as the Snakemake linter asks).


def lora_one_run(experiment, method, setting, seed):
    return f"results/lora_one/{experiment}/{method}/{setting}/seed={seed}/metrics.json"


def lora_one_fig2_records(d="{d}"):
    """Every (α², seed) run at dimension d (a wildcard by default: one job per d)."""
    s = settings("lora_one", "fig2")
    return [
        lora_one_run("fig2", "lora_init", format_setting({"alpha2": a, "d": d}), seed)
        for a in s["alpha2"]
        for seed in seeds_of(s)
    ]


def lora_one_fig4_records(case="{case}"):
    s = settings("lora_one", "fig4")
    return [
        lora_one_run("fig4", m, format_setting({"case": case}), seed)
        for m in s["methods"]
        for seed in seeds_of(s)
    ]


def lora_one_records(experiment):
    """All run records of one LoRA-One experiment at the active scale."""
    s = settings("lora_one", experiment)
    if experiment == "fig2":
        return [r for d in s["dims"] for r in lora_one_fig2_records(d)]
    if experiment == "fig4":
        return [r for case in s["cases"] for r in lora_one_fig4_records(case)]
    if experiment == "fig3":
        pairs = [(m, "base") for m in ("spectral_init", "lora_init")]
    elif experiment == "kappa":
        pairs = [(m, format_setting({"kappa": k})) for m in ("gd", "prec_gd") for k in s["kappas"]]
    elif experiment == "fig1c":
        pairs = [(m, "base") for m in ("full_ft", "lora", "lora_one")]
    return [lora_one_run(experiment, m, setting, seed) for m, setting in pairs for seed in seeds_of(s)]


def lora_one_landscapes():
    return [
        f"results/lora_one/fig1c/full_ft/base/seed={seed}/landscape.parquet"
        for seed in seeds("lora_one", "fig1c")
    ]


def lora_one_params(experiment):
    """Settings JSON for a script, with the seed list resolved."""
    return run_params("lora_one", experiment, seed_list=seeds("lora_one", experiment))


def lora_one_experiment_of(wildcards):
    """The experiment behind a figure file name (figure_2 -> fig2)."""
    return {f: e for e, f in LORA_ONE_FIGURES.items()}[wildcards.figure]


def lora_one_figure_records(wildcards):
    return lora_one_records(lora_one_experiment_of(wildcards))


LORA_ONE_FIGURES = {"fig2": "figure_2", "fig3": "figure_3", "fig4": "figure_4", "kappa": "figure_kappa",
                    "fig1c": "figure_1c"}


def lora_one_fig2_params(wildcards):
    return run_params("lora_one", "fig2", d=int(wildcards.d), seed_list=seeds("lora_one", "fig2"))


def lora_one_fig4_params(wildcards):
    return run_params("lora_one", "fig4", case=wildcards.case, seed_list=seeds("lora_one", "fig4"))


def lora_one_fig1c_dataset(wildcards):
    return dataset_dir(settings("lora_one", "fig1c")["dataset"])

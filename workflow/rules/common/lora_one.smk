# Helper functions of the lora_one rules (kept apart from rules, as the Snakemake linter asks).
LORA_ONE = "lora_one"
LORA_ONE_FIG3_METHODS = ["lora_init", "spectral_init"]
LORA_ONE_FIG4_METHODS = ["lora_one", "lora_ga", "lora_sb"]
LORA_ONE_PREC_METHODS = ["gd", "prec_gd"]
LORA_ONE_FIG1C_METHODS = ["full_ft", "lora", "lora_one"]


def lora_one_params(experiment, **extra):
    """run_params plus the job's thread count, which the scripts pin torch to."""
    return run_params(LORA_ONE, experiment, threads=threads_for(LORA_ONE, experiment), **extra)


def lora_one_seeded_params(experiment):
    """Params of a job with a {seed} wildcard."""

    def params(wildcards):
        return lora_one_params(experiment, seed=int(wildcards.seed))

    return params


def lora_one_fig2_params(wildcards):
    return lora_one_params("fig2", d=int(wildcards.d), seeds=[int(wildcards.seed)])


def lora_one_fig2_outputs(d="{d}", seed="{seed}"):
    """The records of one job: every α² at one d and seed."""
    return [f"results/{LORA_ONE}/fig2/lora_init/{format_setting({'d': d, 'alpha2': a})}/seed={seed}/metrics.json"
            for a in settings(LORA_ONE, "fig2")["alpha2"]]


def lora_one_fig2_records():
    return [path for d in settings(LORA_ONE, "fig2")["dims"] for seed in seeds(LORA_ONE, "fig2")
            for path in lora_one_fig2_outputs(d, seed)]


def lora_one_fig3_params(wildcards):
    return lora_one_params("fig3", g_form=wildcards.g_form)


def lora_one_fig3_records(g_form="{g_form}"):
    return run_records(LORA_ONE, "fig3", [(m, f"g_form={g_form}") for m in LORA_ONE_FIG3_METHODS], seeds(LORA_ONE, "fig3"))


def lora_one_fig4_params(wildcards):
    return lora_one_params("fig4", r=int(wildcards.r), r_star=int(wildcards.r_star))


def lora_one_fig4_records(r="{r}", r_star="{r_star}"):
    return run_records(LORA_ONE, "fig4", [(m, format_setting({"r": r, "r_star": r_star})) for m in LORA_ONE_FIG4_METHODS],
                       seeds(LORA_ONE, "fig4"))


def lora_one_prec_gd_records():
    kappas = settings(LORA_ONE, "prec_gd")["kappas"]
    return run_records(LORA_ONE, "prec_gd", [(m, format_setting({"kappa": k})) for m in LORA_ONE_PREC_METHODS for k in kappas],
                       seeds(LORA_ONE, "prec_gd"))


def lora_one_fig1c_dataset():
    return dataset_dir(settings(LORA_ONE, "fig1c")["dataset"])


def lora_one_fig1c_records(seed="{seed}"):
    return run_records(LORA_ONE, "fig1c", [(m, "base") for m in LORA_ONE_FIG1C_METHODS], [seed])


def lora_one_fig1c_landscape(seed="{seed}"):
    return f"results/{LORA_ONE}/fig1c/landscape/seed={seed}.parquet"


def lora_one_table(name):
    return f"results/{LORA_ONE}/tables/{name}.csv"


# ---- language-model runs (Table 2, Figure 6): one job per (experiment, task) ------------------------
from lorarepro.experiments.lora_one import lm_grid as lora_one_lm_grid

LORA_ONE_LM = ["table2", "fig6"]


def lora_one_lm_tasks(experiment):
    return list(settings(LORA_ONE, experiment).get("tasks", {}))


def lora_one_lm_records(experiment, task=None, name="metrics.json"):
    """The run files of one task's job, or of every task of the experiment."""
    tasks = [task] if task else lora_one_lm_tasks(experiment)
    return [p for t in tasks for p in lora_one_lm_grid.run_records(settings(LORA_ONE, experiment), experiment, t, name)]


def lora_one_lm_assets(experiment, task):
    """The data set and model folders a job reads (materialised first)."""
    spec = settings(LORA_ONE, experiment)["tasks"][task]
    return {"data": dataset_dir(spec["task"]["dataset"]), "model": model_dir(spec["model"]["name"])}


def lora_one_lm_params(experiment):
    """The job's settings as JSON, passed verbatim (prompt templates hold braces)."""
    return verbatim(lora_one_params(experiment))

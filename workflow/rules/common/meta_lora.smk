# Helper functions of the meta_lora rules (kept apart from rules, as the Snakemake linter asks).
from lorarepro.experiments.meta_lora import grid as meta_lora_grid
from lorarepro.experiments.meta_lora.spurious import EXPERIMENT as META_LORA_SPURIOUS, METHOD as META_LORA_NEWTON
from lorarepro.experiments.meta_lora.spurious import setting_of as meta_lora_spurious_setting

META_LORA_MODELS = ["linear", "shallow"]
# Each paper figure and the fine-tuning experiments (model_sweep) it draws; Figure 5 draws the theory runs.
META_LORA_FIGURES = meta_lora_grid.FIGURES
META_LORA_TABLES = ["table_2", "table_thm2", "table_prop3", "table_gd_population", "table_e1"]


def meta_lora_settings(model):
    """A model's settings at this scale, with `protocol: code` applied (the grid and seeds depend on it)."""
    return meta_lora_grid.resolve(settings("meta_lora", model))


def meta_lora_seeds(model):
    return seeds_of(meta_lora_settings(model))


def meta_lora_retrain_records(model, method):
    """Run records of one retraining job: every distinct retraining point of the model's grid."""
    points = meta_lora_grid.retrain_points(meta_lora_settings(model))
    return run_records("meta_lora", f"{model}_retrain", [(method, p) for p in points], meta_lora_seeds(model))


def meta_lora_bases(model, method):
    """The retrained bases (all trials of a point in one file) that fine-tuning reads."""
    return [
        str(meta_lora_grid.bases_file("results", model, method, p))
        for p in meta_lora_grid.retrain_points(meta_lora_settings(model))
    ]


def meta_lora_finetune_records(model, name="metrics.json"):
    """Run files (metrics.json or trace.parquet) of every fine-tuning run of a model's sweeps."""
    runs = meta_lora_grid.finetune_runs(meta_lora_settings(model))
    return [
        path.replace("metrics.json", name)
        for sweep, method, setting in runs
        for path in run_records("meta_lora", f"{model}_{sweep}", [(method, setting)], meta_lora_seeds(model))
    ]


def meta_lora_theory_records(name="metrics.json"):
    runs = meta_lora_grid.theory_runs(settings("meta_lora", "theory"))
    return [
        path.replace("metrics.json", name)
        for experiment, method, setting in runs
        for path in run_records("meta_lora", experiment, [(method, setting)], seeds("meta_lora", "theory"))
    ]


def meta_lora_spurious_records(name="metrics.json"):
    setting = meta_lora_spurious_setting(settings("meta_lora", "theory")["spurious"])
    return [
        path.replace("metrics.json", name)
        for path in run_records(
            "meta_lora", META_LORA_SPURIOUS, [(META_LORA_NEWTON, setting)], seeds("meta_lora", "theory")
        )
    ]


def meta_lora_figure_records(figure):
    """The records a figure draws: its models' fine-tuning runs, or (Figure 5) the theory runs."""
    if figure == "figure_5":
        return meta_lora_spurious_records() + meta_lora_theory_records()
    models = sorted({experiment.split("_")[0] for experiment in META_LORA_FIGURES[figure]})
    return [path for model in models for path in meta_lora_finetune_records(model)]


def meta_lora_all_records():
    return (
        [
            path
            for model in META_LORA_MODELS
            for path in meta_lora_retrain_records(model, "sr")
            + meta_lora_retrain_records(model, "lora_ml")
            + meta_lora_finetune_records(model)
        ]
        + meta_lora_theory_records()
        + meta_lora_spurious_records()
    )


# Table 1's language-model experiment: retrain (method, seed) -> base.pt -> fine-tune every rank and
# held-out task of that base -> Table 1.
from lorarepro.experiments.meta_lora import lm as meta_lora_lm


def meta_lora_lm_methods():
    return meta_lora_lm.retrain_methods(settings("meta_lora", "lm"))


def meta_lora_lm_retrain_dir(method):
    return f"results/meta_lora/{meta_lora_lm.RETRAIN}/{method}/base/seed={{seed}}"


def meta_lora_lm_finetune_records(method, seed="{seed}", name="metrics.json"):
    """The run files of one fine-tuning job (one retrained base): every rank and held-out task."""
    runs = meta_lora_lm.finetune_runs(settings("meta_lora", "lm"), method)
    return [
        f"results/meta_lora/{meta_lora_lm.FINETUNE}/{method}/{meta_lora_lm.finetune_setting(r, t)}/seed={seed}/{name}"
        for r, t in runs
    ]


def meta_lora_lm_records(name="metrics.json"):
    """Every run file of Table 1: the retraining runs and the fine-tuning runs of every base."""
    retrain = [
        f"{meta_lora_lm_retrain_dir(method).format(seed=seed)}/{name}"
        for method in meta_lora_lm_methods()
        for seed in seeds("meta_lora", "lm")
    ]
    finetune = [
        path
        for method in meta_lora_lm_methods()
        for seed in seeds("meta_lora", "lm")
        for path in meta_lora_lm_finetune_records(method, seed, name)
    ]
    return retrain + finetune


def meta_lora_lm_assets():
    """The data set and pretrained model the language-model jobs read (the DAG materialises them first)."""
    lm = settings("meta_lora", "lm")
    return {"data": dataset_dir(lm["task"]["dataset"]), "model": model_dir(lm["model"]["name"])}

# Helper functions of the ntk_lora rules (kept apart from rules, as the Snakemake linter asks).
NTK = "ntk_lora"
NTK_MODALITIES = ("image", "speech")


def ntk_lm_tasks():
    """The prompted tasks of Figures 2 and 4 at this scale."""
    return list(settings(NTK, "lm_features")["tasks"])


def ntk_fit_tasks(experiment):
    """The tasks one fit job each runs: `<task>-<data seed>` (prompted tasks), a modality, or `n<N>`."""
    s = settings(NTK, experiment)
    if experiment in ("fig2", "fig4"):
        return [f"{task}-{seed}" for task in ntk_lm_tasks() for seed in s["data_seeds"]]
    if experiment == "fig3":
        return list(NTK_MODALITIES)
    return [f"n{n}" for n in s["n_samples"]]


def ntk_family(task):
    """`mr-13` -> `mr`: the prompted task behind a k-shot draw (other tasks are their own family)."""
    return task.rsplit("-", 1)[0]


def ntk_per_task(value, task):
    """A setting given once, or per task family."""
    return value[ntk_family(task)] if isinstance(value, dict) else value


def ntk_has_reference(experiment, task):
    """FISTA's F* exists where the objective has a minimiser: with weight decay (a nuclear-norm penalty)."""
    s = settings(NTK, experiment)
    return bool(s.get("reference")) and ntk_per_task(s["weight_decay"], task) > 0


def ntk_fit_records(experiment, task):
    """Every run record one fit job writes: full fine-tuning, FISTA's reference, the summary, LoRA per rank."""
    s = settings(NTK, experiment)
    single = [("full", {"task": task}), ("summary", {"task": task})]
    if ntk_has_reference(experiment, task):
        single.append(("reference", {"task": task}))
    lora = [("lora", format_setting({"task": task, "r": r})) for r in s["ranks"]]
    return run_records(NTK, experiment, [(m, format_setting(x)) for m, x in single], [0]) + run_records(
        NTK, experiment, lora, seeds_of(s)
    )


def ntk_fit_params(experiment, task):
    """The fit script's parameters, with the per-task learning rate, weight decay and batch size resolved."""
    s = settings(NTK, experiment)
    extra = {k: ntk_per_task(s[k], task) for k in ("lr", "weight_decay", "batch_size") if k in s}
    return run_params(NTK, experiment, seed_list=seeds_of(s), **extra)


def ntk_rule_name(experiment, task):
    return f"ntk_lora_{experiment}_fit_{task.replace('-', '_')}"


def ntk_train_features(experiment, task):
    if experiment in ("fig2", "fig4"):
        layers = settings(NTK, experiment)["layers"]
        return f"results/ntk_lora/features/{layers}/{task}/train.pt"
    if experiment == "fig3":
        return f"results/ntk_lora/features/vision/{task}/train.pt"
    return f"results/ntk_lora/features/synthetic/{task}/train.pt"


def ntk_test_features(experiment, task):
    """Test features of a k-shot task: its family's test set (shared by the k-shot draws)."""
    layers = settings(NTK, experiment)["layers"]
    return f"results/ntk_lora/features/{layers}/{ntk_family(task)}/test.pt"


def ntk_task_dataset(wildcards):
    return dataset_dir(settings(NTK, "lm_features")["tasks"][wildcards.task]["dataset"])


def ntk_lm_features_params(wildcards):
    """A function, so that Snakemake leaves the prompt templates' {text} fields alone."""
    return run_params(NTK, "lm_features", threads=threads_for(NTK, "lm_features"))


def ntk_lm_model():
    return model_dir(settings(NTK, "lm_features")["model"]["name"])


def ntk_hub(modality):
    """The modality's hub classifier block (paper scale), or None: the ViT pretrained in the pipeline."""
    return settings(NTK, "vision")["modalities"][modality].get("hub")


def ntk_modality_data_path(modality):
    """The hub or image data set folder, or the synthesised spoken-words corpus."""
    spec = settings(NTK, "vision")["modalities"][modality]
    if ntk_hub(modality):
        return dataset_dir(ntk_hub(modality)["data"])
    if spec["kind"] == "image":
        return dataset_dir(spec["data"])
    return "results/ntk_lora/data/spoken_words.parquet"


def ntk_modality_data(wildcards):
    return ntk_modality_data_path(wildcards.modality)


def ntk_pretrained(modality):
    """The model fine-tuned on a modality: the hub checkpoint's folder, or the ViT pretrained here."""
    if ntk_hub(modality):
        return model_dir(ntk_hub(modality)["model"])
    return f"results/ntk_lora/pretrain/{modality}/base/seed=0/model.pt"


def ntk_modality_model(wildcards):
    return ntk_pretrained(wildcards.modality)


def ntk_pretrain_records():
    """The pretraining records of the modalities whose ViT is pretrained here."""
    return [ntk_pretrain_record(m) for m in NTK_MODALITIES if not ntk_hub(m)]


def ntk_table_4_params():
    """Table 4's parameters; where hub classifiers replace the pretrained ViTs, which ones (the table says)."""
    hubs = {m: f"{h['model']} on {h['data']}" for m in NTK_MODALITIES if (h := ntk_hub(m))}
    return run_params(NTK, "table4", **({"hub_models": hubs} if hubs else {}))


def ntk_pretrain_record(modality):
    return f"results/ntk_lora/pretrain/{modality}/base/seed=0/metrics.json"


def ntk_table4_params(modality):
    """Table 4 trains as Figure 3 does (Table 2's learning rate and weight decay of the modality)."""
    fig3 = settings(NTK, "fig3")
    return run_params(NTK, "table4", seed_list=seeds_of(settings(NTK, "table4")),
                      lr=ntk_per_task(fig3["lr"], modality), weight_decay=ntk_per_task(fig3["weight_decay"], modality),
                      **settings(NTK, "vision"))


def ntk_table4_records(modality):
    s = settings(NTK, "table4")
    pairs = [(method, format_setting({"task": modality, "r": s["rank"]})) for method in ("lora_linearized", "lora_actual")]
    return run_records(NTK, "table4", pairs, seeds_of(s))


def ntk_experiment_records(experiment):
    return [record for task in ntk_fit_tasks(experiment) for record in ntk_fit_records(experiment, task)]

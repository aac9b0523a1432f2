# Rules of the ntk_lora paper: experiments -> run records -> tables and figures.
# (Registered with `register` so claims, reports and the `ntk_lora` target pick them up.)
#
# NTK features (G of the trained W_q, W_v per example) are computed once per task and reused by every
# fit; each fit job trains LoRA at every rank and seed and full fine-tuning on one task.


rule ntk_lora_fig1:
    output:
        records=run_records(NTK, "fig1", [("panel_a", "base"), ("panel_b", "base"), ("panel_c", "base")], [0]),
        figure=figure_files(NTK, "figure_1"),
    params:
        cfg=run_params(NTK, "fig1"),
    log:
        "results/logs/ntk_lora/fig1.log",
    benchmark:
        "results/benchmarks/rules/ntk_lora/fig1.tsv"
    group: group_for(NTK, "fig1")
    threads: 1
    resources:
        mem_mb=mem_mb_for(NTK, "fig1"),
        runtime=runtime_for(NTK, "fig1"),
        gpu=gpu_for(NTK, "fig1"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.ntk_lora.figure1 --params {params.cfg:q} --records {output.records}"
        " --figure {output.figure} > {log} 2>&1"


# ----------------------------------------------------------------------------------------------
# Prompted language-model tasks (Figures 2 and 4)
rule ntk_lora_lm_train_features:
    input:
        data=ntk_task_dataset,
        model=ntk_lm_model(),
    output:
        "results/ntk_lora/features/{layers}/{task}-{dseed}/train.pt",
    wildcard_constraints:
        layers="last|all",
        task="[a-z0-9_]+",
        dseed=r"\d+",
    params:
        cfg=ntk_lm_features_params,
    log:
        "results/logs/ntk_lora/features/{layers}/{task}-{dseed}/train.log",
    benchmark:
        "results/benchmarks/rules/ntk_lora/features/{layers}/{task}-{dseed}/train.tsv"
    group: group_for(NTK, "lm_features")
    threads: threads_for(NTK, "lm_features")
    resources:
        mem_mb=mem_mb_for(NTK, "lm_features"),
        runtime=runtime_for(NTK, "lm_features"),
        gpu=gpu_for(NTK, "lm_features"),
    conda:
        ENV_GPU
    shell:
        "python -m lorarepro.experiments.ntk_lora.lm_features --params {params.cfg:q} --task {wildcards.task}"
        " --layers {wildcards.layers} --data-seed {wildcards.dseed} --split train --out {output} > {log} 2>&1"


rule ntk_lora_lm_test_features:
    input:
        data=ntk_task_dataset,
        model=ntk_lm_model(),
    output:
        "results/ntk_lora/features/{layers}/{task}/test.pt",
    wildcard_constraints:
        layers="last|all",
        task="[a-z0-9_]+",
    params:
        cfg=ntk_lm_features_params,
    log:
        "results/logs/ntk_lora/features/{layers}/{task}/test.log",
    benchmark:
        "results/benchmarks/rules/ntk_lora/features/{layers}/{task}/test.tsv"
    group: group_for(NTK, "lm_features")
    threads: threads_for(NTK, "lm_features")
    resources:
        mem_mb=mem_mb_for(NTK, "lm_features"),
        runtime=runtime_for(NTK, "lm_features"),
        gpu=gpu_for(NTK, "lm_features"),
    conda:
        ENV_GPU
    shell:
        "python -m lorarepro.experiments.ntk_lora.lm_features --params {params.cfg:q} --task {wildcards.task}"
        " --layers {wildcards.layers} --split test --out {output} > {log} 2>&1"


# ----------------------------------------------------------------------------------------------
# Image and speech tasks (Figure 3, Table 4): corpus, pretraining, features
rule ntk_lora_spoken_words:
    output:
        "results/ntk_lora/data/spoken_words.parquet",
    params:
        cfg=run_params(NTK, "vision"),
    log:
        "results/logs/ntk_lora/spoken_words.log",
    benchmark:
        "results/benchmarks/rules/ntk_lora/spoken_words.tsv"
    group: group_for(NTK, "vision")
    threads: 1
    resources:
        mem_mb=mem_mb_for(NTK, "vision"),
        runtime=runtime_for(NTK, "vision"),
        gpu=gpu_for(NTK, "vision"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.ntk_lora.spoken_words --params {params.cfg:q} --out {output} > {log} 2>&1"


rule ntk_lora_pretrain_vit:
    input:
        ntk_modality_data,
    output:
        model="results/ntk_lora/pretrain/{modality}/base/seed=0/model.pt",
        record="results/ntk_lora/pretrain/{modality}/base/seed=0/metrics.json",
    wildcard_constraints:
        modality="image|speech",
    params:
        cfg=run_params(NTK, "vision", threads=threads_for(NTK, "vision")),
    log:
        "results/logs/ntk_lora/pretrain/{modality}.log",
    benchmark:
        "results/benchmarks/rules/ntk_lora/pretrain/{modality}.tsv"
    group: group_for(NTK, "vision")
    threads: threads_for(NTK, "vision")
    resources:
        mem_mb=mem_mb_for(NTK, "vision"),
        runtime=runtime_for(NTK, "vision"),
        gpu=gpu_for(NTK, "vision"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.ntk_lora.pretrain_vit --params {params.cfg:q} --modality {wildcards.modality}"
        " --data {input} --out {output.model} --record {output.record} > {log} 2>&1"


rule ntk_lora_vision_features:
    input:
        data=ntk_modality_data,
        model=ntk_modality_model,
    output:
        train="results/ntk_lora/features/vision/{modality}/train.pt",
        test="results/ntk_lora/features/vision/{modality}/test.pt",
    wildcard_constraints:
        modality="image|speech",
    params:
        cfg=run_params(NTK, "vision"),
    log:
        "results/logs/ntk_lora/features/vision/{modality}.log",
    benchmark:
        "results/benchmarks/rules/ntk_lora/features/vision/{modality}.tsv"
    group: group_for(NTK, "vision")
    threads: 1
    resources:
        mem_mb=mem_mb_for(NTK, "vision"),
        runtime=runtime_for(NTK, "vision"),
        gpu=gpu_for(NTK, "vision"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.ntk_lora.vision_features --params {params.cfg:q} --modality {wildcards.modality}"
        " --data {input.data} --model {input.model} --train {output.train} --test {output.test} > {log} 2>&1"


# Synthetic features for the N sweep (claim C9).
rule ntk_lora_synthetic_features:
    output:
        "results/ntk_lora/features/synthetic/n{n}/train.pt",
    wildcard_constraints:
        n=r"\d+",
    params:
        cfg=run_params(NTK, "nsweep"),
    log:
        "results/logs/ntk_lora/features/synthetic/n{n}.log",
    benchmark:
        "results/benchmarks/rules/ntk_lora/features/synthetic/n{n}.tsv"
    group: group_for(NTK, "nsweep")
    threads: 1
    resources:
        mem_mb=mem_mb_for(NTK, "nsweep"),
        runtime=runtime_for(NTK, "nsweep"),
        gpu=gpu_for(NTK, "nsweep"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.ntk_lora.synthetic_features --params {params.cfg:q} --n {wildcards.n}"
        " --out {output} > {log} 2>&1"


# ----------------------------------------------------------------------------------------------
# Fits: one job per (experiment, task), LoRA at every rank and seed, full fine-tuning, F*.
for _exp in ("fig2", "fig3", "fig4", "nsweep"):
    for _task in ntk_fit_tasks(_exp):

        rule:
            name:
                ntk_rule_name(_exp, _task)
            input:
                train=ntk_train_features(_exp, _task),
                test=ntk_test_features(_exp, _task) if _exp == "fig4" else [],
            output:
                ntk_fit_records(_exp, _task),
            params:
                cfg=ntk_fit_params(_exp, _task),
                experiment=_exp,
                task=_task,
                test=f"--test {ntk_test_features(_exp, _task)}" if _exp == "fig4" else "",
            log:
                f"results/logs/ntk_lora/{_exp}/{_task}.log",
            benchmark:
                f"results/benchmarks/rules/ntk_lora/{_exp}/{_task}.tsv"
            group: group_for(NTK, _exp)
            threads: threads_for(NTK, _exp)
            resources:
                mem_mb=mem_mb_for(NTK, _exp),
                runtime=runtime_for(NTK, _exp),
                gpu=gpu_for(NTK, _exp),
            conda:
                ENV_GPU
            shell:
                "python -m lorarepro.experiments.ntk_lora.fit --params {params.cfg:q} --experiment {params.experiment}"
                " --task {params.task}"
                " --train {input.train} {params.test} --root results > {log} 2>&1"


for _modality in NTK_MODALITIES:

    rule:
        name:
            f"ntk_lora_table4_{_modality}"
        input:
            data=ntk_modality_data_path(_modality),
            model=ntk_pretrained(_modality),
            train=f"results/ntk_lora/features/vision/{_modality}/train.pt",
            test=f"results/ntk_lora/features/vision/{_modality}/test.pt",
        output:
            ntk_table4_records(_modality),
        params:
            cfg=ntk_table4_params(_modality),
            modality=_modality,
        log:
            f"results/logs/ntk_lora/table4/{_modality}.log",
        benchmark:
            f"results/benchmarks/rules/ntk_lora/table4/{_modality}.tsv"
        group: group_for(NTK, "table4")
        threads: 1
        resources:
            mem_mb=mem_mb_for(NTK, "table4"),
            runtime=runtime_for(NTK, "table4"),
            gpu=gpu_for(NTK, "table4"),
        conda:
            ENV_CPU
        shell:
            "python -m lorarepro.experiments.ntk_lora.table4 --params {params.cfg:q} --modality {params.modality}"
            " --data {input.data} --model {input.model} --train {input.train} --test {input.test} --root results"
            " > {log} 2>&1"


# ----------------------------------------------------------------------------------------------
# Figures and tables
NTK_PLOTS = {
    "figure_2": ("fig2", "table_fig2"),
    "figure_3": ("fig3", "table_fig3"),
    "figure_4": ("fig4", "table_fig4"),
    "figure_c9": ("nsweep", "table_c9"),
}

for _figure, (_exp, _table) in NTK_PLOTS.items():

    rule:
        name:
            f"ntk_lora_{_figure}"
        input:
            records=ntk_experiment_records(_exp),
            pretrain=ntk_pretrain_records() if _exp == "fig3" else [],
        output:
            figure=figure_files(NTK, _figure),
            table=f"results/ntk_lora/tables/{_table}.csv",
        params:
            cfg=run_params(NTK, _exp),
            what=_figure,
        log:
            f"results/logs/ntk_lora/{_figure}.log",
        benchmark:
            f"results/benchmarks/rules/ntk_lora/{_figure}.tsv"
        group: SUMMARIES_GROUP
        threads: 1
        resources:
            mem_mb=mem_mb_for(),
            runtime=runtime_for(),
        conda:
            ENV_REPORT
        shell:
            "python -m lorarepro.experiments.ntk_lora.plots {params.what} --params {params.cfg:q}"
            " --records {input.records} {input.pretrain} --figure {output.figure} --table {output.table} > {log} 2>&1"


rule ntk_lora_table_4:
    input:
        [record for modality in NTK_MODALITIES for record in ntk_table4_records(modality)],
    output:
        "results/ntk_lora/tables/table_4.csv",
    params:
        cfg=ntk_table_4_params(),
    log:
        "results/logs/ntk_lora/table_4.log",
    benchmark:
        "results/benchmarks/rules/ntk_lora/table_4.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.ntk_lora.plots table_4 --params {params.cfg:q} --records {input}"
        " --table {output} > {log} 2>&1"


register(
    NTK,
    records=rules.ntk_lora_fig1.output.records
    + [r for exp in ("fig2", "fig3", "fig4", "nsweep") for r in ntk_experiment_records(exp)]
    + ntk_pretrain_records()
    + [r for m in NTK_MODALITIES for r in ntk_table4_records(m)],
    tables=[f"results/ntk_lora/tables/{table}.csv" for _, table in NTK_PLOTS.values()]
    + ["results/ntk_lora/tables/table_4.csv"],
    figures=figure_files(NTK, "figure_1") + [f for figure in NTK_PLOTS for f in figure_files(NTK, figure)],
)

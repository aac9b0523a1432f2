# Rules of the meta_lora paper: experiments -> run records -> tables and figures.
# (Registered with `register` so claims, reports and the `meta_lora` target pick them up.)
#
# retrain (per model and method, every point of the grid, trials batched) -> fine-tune (per model,
# every sweep and both methods, so each LoRA-ML trial is compared with SR on the same test data)
# -> figures and tables. The theory checks and Figure 5's minimum search need no training data.
for _model in META_LORA_MODELS:
    for _method in meta_lora_grid.METHODS:

        rule:
            name:
                f"meta_lora_{_model}_retrain_{_method}"
            output:
                records=meta_lora_retrain_records(_model, _method),
                bases=meta_lora_bases(_model, _method),
            params:
                cfg=run_params("meta_lora", _model),
                model=_model,
                method=_method,
            log:
                f"results/logs/meta_lora/{_model}_retrain_{_method}.log",
            benchmark:
                f"results/benchmarks/rules/meta_lora/{_model}_retrain_{_method}.tsv"
            group: group_for("meta_lora", _model)
            threads: threads_for("meta_lora", _model)
            resources:
                mem_mb=mem_mb_for("meta_lora", _model),
                runtime=runtime_for("meta_lora", _model),
                gpu=gpu_for("meta_lora", _model),
            conda:
                ENV_CPU
            shell:
                "python -m lorarepro.experiments.meta_lora.retrain --params {params.cfg:q} --model {params.model}"
                " --method {params.method} --threads {threads} --records {output.records} > {log} 2>&1"

    rule:
        name:
            f"meta_lora_{_model}_finetune"
        input:
            meta_lora_bases(_model, "sr") + meta_lora_bases(_model, "lora_ml"),
        output:
            records=meta_lora_finetune_records(_model),
            traces=meta_lora_finetune_records(_model, name="trace.parquet"),
        params:
            cfg=run_params("meta_lora", _model),
            model=_model,
        log:
            f"results/logs/meta_lora/{_model}_finetune.log",
        benchmark:
            f"results/benchmarks/rules/meta_lora/{_model}_finetune.tsv"
        group: group_for("meta_lora", _model)
        threads: threads_for("meta_lora", _model)
        resources:
            mem_mb=mem_mb_for("meta_lora", _model),
            runtime=runtime_for("meta_lora", _model),
            gpu=gpu_for("meta_lora", _model),
        conda:
            ENV_CPU
        shell:
            "python -m lorarepro.experiments.meta_lora.finetune --params {params.cfg:q} --model {params.model}"
            " --threads {threads} --records {output.records} > {log} 2>&1"


rule meta_lora_theory:
    output:
        records=meta_lora_theory_records(),
    params:
        cfg=run_params("meta_lora", "theory"),
    log:
        "results/logs/meta_lora/theory.log",
    benchmark:
        "results/benchmarks/rules/meta_lora/theory.tsv"
    group: group_for("meta_lora", "theory")
    threads: threads_for("meta_lora", "theory")
    resources:
        mem_mb=mem_mb_for("meta_lora", "theory"),
        runtime=runtime_for("meta_lora", "theory"),
        gpu=gpu_for("meta_lora", "theory"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.meta_lora.theory --params {params.cfg:q} --threads {threads}"
        " --records {output.records} > {log} 2>&1"


rule meta_lora_spurious:
    output:
        records=meta_lora_spurious_records(),
        traces=meta_lora_spurious_records(name="trace.parquet"),
    params:
        cfg=run_params("meta_lora", "theory"),
    log:
        "results/logs/meta_lora/spurious.log",
    benchmark:
        "results/benchmarks/rules/meta_lora/spurious.tsv"
    group: group_for("meta_lora", "theory")
    threads: threads_for("meta_lora", "theory")
    resources:
        mem_mb=mem_mb_for("meta_lora", "theory"),
        runtime=runtime_for("meta_lora", "theory"),
        gpu=gpu_for("meta_lora", "theory"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.meta_lora.spurious --params {params.cfg:q} --threads {threads}"
        " --records {output.records} > {log} 2>&1"


rule meta_lora_figures:
    input:
        sorted({path for figure in [*META_LORA_FIGURES, "figure_5"] for path in meta_lora_figure_records(figure)}),
    output:
        [path for figure in [*META_LORA_FIGURES, "figure_5"] for path in figure_files("meta_lora", figure)],
    log:
        "results/logs/meta_lora/figures.log",
    benchmark:
        "results/benchmarks/rules/meta_lora/figures.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.meta_lora.figures --records {input} --out {output} > {log} 2>&1"


rule meta_lora_tables:
    input:
        meta_lora_all_records(),
    output:
        csv=[f"results/meta_lora/tables/{table}.csv" for table in META_LORA_TABLES],
        md=[f"results/meta_lora/tables/{table}.md" for table in META_LORA_TABLES],
    log:
        "results/logs/meta_lora/tables.log",
    benchmark:
        "results/benchmarks/rules/meta_lora/tables.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.meta_lora.tables --records {input} --out {output.csv} > {log} 2>&1"


rule meta_lora_synthetic:
    """The linear and shallow-network part of the paper alone (Figures 1-5, the theory and spurious-
    minimum checks, their tables): CPU minutes, no language model."""
    input:
        rules.meta_lora_figures.output,
        rules.meta_lora_tables.output,


# Table 1 (language model): one retraining job per (method, seed), saving the retrained base; one
# fine-tuning job per base (every rank and held-out task); the table from every fine-tuning run.
for _method in meta_lora_lm_methods():

    rule:
        name:
            f"meta_lora_lm_retrain_{_method}"
        input:
            **meta_lora_lm_assets(),
        output:
            record=f"{meta_lora_lm_retrain_dir(_method)}/metrics.json",
            trace=f"{meta_lora_lm_retrain_dir(_method)}/trace.parquet",
            base=f"{meta_lora_lm_retrain_dir(_method)}/base.pt",
        params:
            cfg=run_params("meta_lora", "lm"),
            method=_method,
        wildcard_constraints:
            seed=r"\d+",
        log:
            f"results/logs/meta_lora/lm_retrain_{_method}_{{seed}}.log",
        benchmark:
            f"results/benchmarks/rules/meta_lora/lm_retrain_{_method}_{{seed}}.tsv"
        group: group_for("meta_lora", "lm")
        threads: threads_for("meta_lora", "lm")
        resources:
            mem_mb=mem_mb_for("meta_lora", "lm"),
            runtime=runtime_for("meta_lora", "lm"),
            gpu=gpu_for("meta_lora", "lm"),
        conda:
            ENV_GPU if gpu_for("meta_lora", "lm") else ENV_CPU
        shell:
            "python -m lorarepro.experiments.meta_lora.lm_retrain --params {params.cfg:q} --method {params.method}"
            " --seed {wildcards.seed} --threads {threads} --record {output.record} --base {output.base}"
            " --data-root $(dirname {input.data}) --models-root $(dirname {input.model}) > {log} 2>&1"

    rule:
        name:
            f"meta_lora_lm_finetune_{_method}"
        input:
            **meta_lora_lm_assets(),
            base=f"{meta_lora_lm_retrain_dir(_method)}/base.pt",
        output:
            records=meta_lora_lm_finetune_records(_method),
            traces=meta_lora_lm_finetune_records(_method, name="trace.parquet"),
        params:
            cfg=run_params("meta_lora", "lm"),
            method=_method,
        wildcard_constraints:
            seed=r"\d+",
        log:
            f"results/logs/meta_lora/lm_finetune_{_method}_{{seed}}.log",
        benchmark:
            f"results/benchmarks/rules/meta_lora/lm_finetune_{_method}_{{seed}}.tsv"
        group: group_for("meta_lora", "lm")
        threads: threads_for("meta_lora", "lm")
        resources:
            mem_mb=mem_mb_for("meta_lora", "lm"),
            runtime=runtime_for("meta_lora", "lm"),
            gpu=gpu_for("meta_lora", "lm"),
        conda:
            ENV_GPU if gpu_for("meta_lora", "lm") else ENV_CPU
        shell:
            "python -m lorarepro.experiments.meta_lora.lm_finetune --params {params.cfg:q} --method {params.method}"
            " --seed {wildcards.seed} --base {input.base} --threads {threads} --records {output.records}"
            " --data-root $(dirname {input.data}) --models-root $(dirname {input.model}) > {log} 2>&1"


rule meta_lora_lm_table:
    input:
        meta_lora_lm_records(),
    output:
        csv="results/meta_lora/tables/table_1.csv",
        md="results/meta_lora/tables/table_1.md",
    params:
        cfg=run_params("meta_lora", "lm"),
    log:
        "results/logs/meta_lora/table_1.log",
    benchmark:
        "results/benchmarks/rules/meta_lora/table_1.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.meta_lora.lm_table --params {params.cfg:q} --records {input}"
        " --out {output.csv} > {log} 2>&1"


register(
    "meta_lora",
    records=meta_lora_all_records() + meta_lora_lm_records(),
    tables=[f"results/meta_lora/tables/{table}.csv" for table in [*META_LORA_TABLES, "table_1"]],
    figures=[path for figure in [*META_LORA_FIGURES, "figure_5"] for path in figure_files("meta_lora", figure)],
)

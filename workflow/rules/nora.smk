# Rules of the nora paper: experiments -> run records -> tables and figures.
# (Registered with `register` so claims, reports and the `nora` target pick them up.)
#
# One job per experiment: its runs (method x setting) take about a second each, seeds batched as a
# leading tensor dimension, so a process per run would mostly be spent starting Python and torch.
for _exp in NORA_MF_EXPERIMENTS:

    rule:
        name:
            f"nora_{_exp}"
        output:
            records=nora_records(_exp),
            traces=nora_records(_exp, name="trace.parquet"),
        params:
            cfg=run_params("nora", _exp),
            experiment=_exp,
        log:
            f"results/logs/nora/{_exp}.log",
        benchmark:
            f"results/benchmarks/rules/nora/{_exp}.tsv"
        group: group_for("nora", _exp)
        threads: threads_for("nora", _exp)
        resources:
            mem_mb=mem_mb_for("nora", _exp),
            runtime=runtime_for("nora", _exp),
            gpu=gpu_for("nora", _exp),
        conda:
            ENV_CPU
        shell:
            "python -m lorarepro.experiments.nora.run --params {params.cfg:q} --experiment {params.experiment}"
            " --threads {threads} --records {output.records} > {log} 2>&1"


# Language-model runs (Tables 2 and 4, Figure 2) through the fine-tuning engine: one job per task, its
# methods and seeds one after another in the process (a run takes a minute on a CPU; the imports
# alone take a quarter of that); with `train_once`, one job per method (see nora_lm_jobs).
for _exp in NORA_LM_EXPERIMENTS:
    for _job, _tasks, _runs in nora_lm_jobs(_exp):

        rule:
            name:
                f"nora_{_exp}_{_job}"
            input:
                **nora_lm_assets(_exp, _tasks),
            output:
                records=nora_job_records(_exp, _runs),
                traces=nora_job_records(_exp, _runs, name="trace.parquet"),
            params:
                cfg=nora_lm_params(_exp),
                experiment=_exp,
            log:
                f"results/logs/nora/{_exp}/{_job}.log",
            benchmark:
                f"results/benchmarks/rules/nora/{_exp}/{_job}.tsv"
            group: group_for("nora", _exp)
            threads: threads_for("nora", _exp)
            resources:
                mem_mb=mem_mb_for("nora", _exp),
                runtime=runtime_for("nora", _exp),
                gpu=gpu_for("nora", _exp),
            conda:
                ENV_GPU if gpu_for("nora", _exp) else ENV_CPU
            shell:
                "python -m lorarepro.experiments.nora.finetune --params {params.cfg:q} --experiment {params.experiment}"
                " --threads {threads} --records {output.records}"
                " --data-root $(dirname {input.data}) --models-root $(dirname {input.model}) > {log} 2>&1"


for _figure, _experiments in NORA_FIGURES.items():

    rule:
        name:
            f"nora_{_figure}"
        input:
            nora_records(*_experiments),
        output:
            figure_files("nora", _figure),
        params:
            figure=_figure,
        log:
            f"results/logs/nora/{_figure}.log",
        benchmark:
            f"results/benchmarks/rules/nora/{_figure}.tsv"
        group: SUMMARIES_GROUP
        threads: 1
        resources:
            mem_mb=mem_mb_for(),
            runtime=runtime_for(),
        conda:
            ENV_REPORT
        shell:
            "python -m lorarepro.experiments.nora.figures {params.figure} --records {input}"
            " --out {output} > {log} 2>&1"


rule nora_tables:
    input:
        nora_records(*NORA_MF_EXPERIMENTS),
    output:
        csv=[f"results/nora/tables/{table}.csv" for table in NORA_MF_TABLES],
        md=[f"results/nora/tables/{table}.md" for table in NORA_MF_TABLES],
    log:
        "results/logs/nora/tables.log",
    benchmark:
        "results/benchmarks/rules/nora/tables.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.nora.tables --records {input} --out {output.csv} > {log} 2>&1"


# Tables 2 and 4: each from its own fine-tuning runs, so one task's jobs do not wait for the other's.
for _table, _experiment in NORA_LM_TABLES.items():

    rule:
        name:
            f"nora_{_table}"
        input:
            nora_records(_experiment),
        output:
            csv=f"results/nora/tables/{_table}.csv",
            md=f"results/nora/tables/{_table}.md",
        log:
            f"results/logs/nora/{_table}.log",
        benchmark:
            f"results/benchmarks/rules/nora/{_table}.tsv"
        group: SUMMARIES_GROUP
        threads: 1
        resources:
            mem_mb=mem_mb_for(),
            runtime=runtime_for(),
        conda:
            ENV_REPORT
        shell:
            "python -m lorarepro.experiments.nora.tables --records {input} --out {output.csv} > {log} 2>&1"


rule nora_synthetic:
    """The matrix-factorization part of the paper alone (Figure 1, Table 1, Theorems 5-6): CPU
    seconds, no language model."""
    input:
        [path for figure in NORA_MF_FIGURES for path in figure_files("nora", figure)],
        [f"results/nora/tables/{table}.csv" for table in NORA_MF_TABLES],


register(
    "nora",
    records=nora_records(*NORA_EXPERIMENTS),
    tables=[f"results/nora/tables/{table}.csv" for table in NORA_MF_TABLES + list(NORA_LM_TABLES)],
    figures=[path for figure in NORA_FIGURES for path in figure_files("nora", figure)],
)

# Rules of the cross-paper leaderboard (issue 16): one job per task runs every method in-process
# (the model loaded and the task tokenised once; see lorarepro.experiments.leaderboard.run), then
# the tables and the figure. Target `leaderboard`; part of `all`, not of `regenerate_paper_figures`.
for _task in LEADERBOARD_TASKS:

    rule:
        name:
            f"leaderboard_{_task}"
        input:
            **leaderboard_assets(_task),
        output:
            records=leaderboard_records(_task),
            traces=leaderboard_records(_task, name="trace.parquet"),
        params:
            cfg=verbatim(run_params("leaderboard", _task)),
            task=_task,
        log:
            f"results/logs/leaderboard/{_task}.log",
        benchmark:
            f"results/benchmarks/rules/leaderboard/{_task}.tsv"
        group: group_for("leaderboard", _task)
        priority: leaderboard_priority(_task)
        threads: threads_for("leaderboard", _task)
        resources:
            mem_mb=mem_mb_for("leaderboard", _task),
            runtime=runtime_for("leaderboard", _task),
            gpu=gpu_for("leaderboard", _task),
        conda:
            ENV_CPU
        shell:
            "python -m lorarepro.experiments.leaderboard.run --params {params.cfg:q} --task {params.task}"
            " --threads {threads} --data-root $(dirname {input.data}) --models-root $(dirname {input.model})"
            " > {log} 2>&1"


rule leaderboard_tables:
    input:
        [leaderboard_records(task) for task in LEADERBOARD_TASKS],
    output:
        csv=LEADERBOARD_TABLES,
        md=[path.replace(".csv", ".md") for path in LEADERBOARD_TABLES],
    params:
        cfg=verbatim(as_json({**LEADERBOARD_SETTINGS, "scale": SCALE})),
    log:
        "results/logs/leaderboard/tables.log",
    benchmark:
        "results/benchmarks/rules/leaderboard/tables.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.leaderboard.tables --params {params.cfg:q} --records {input}"
        " --out {output.csv} > {log} 2>&1"


rule leaderboard_figure:
    input:
        table=LEADERBOARD_TABLES[0],
        ranks=LEADERBOARD_TABLES[1],
    output:
        LEADERBOARD_FIGURE,
    log:
        "results/logs/leaderboard/figure.log",
    benchmark:
        "results/benchmarks/rules/leaderboard/figure.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.leaderboard.figure --table {input.table} --ranks {input.ranks}"
        " --out {output} > {log} 2>&1"


rule leaderboard:
    """Every method on every task: results/leaderboard/ tables and figure."""
    input:
        leaderboard_products(),

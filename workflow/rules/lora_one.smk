# Rules of the lora_one paper: experiments -> run records -> tables and figures.
# (Registered with `register` so claims, reports and the `lora_one` target pick them up.)
#   fig2      GD from LoRA-init on linear task (3), one job per (d, seed), init scales batched
#   fig3      the rank-one toy, LoRA-init vs Spectral-init, one job per form of g
#   fig4      LoRA-One vs LoRA-GA vs LoRA-SB, one job per rank case, seeds batched
#   prec_gd   GD vs Prec-GD over κ(Δ) (Theorem C.21), one job
#   fig1c     MNIST: pretrain on odd digits, then Full FT / LoRA / LoRA-One on even digits, per seed
#   table2    language models: every method (and the untrained rows) on each task, one job per task
#   fig6      language models: LoRA-One vs LoRA-One-P across learning rates, one job per task


rule lora_one_fig2:
    output:
        lora_one_fig2_outputs(),
    params:
        cfg=lora_one_fig2_params,
    wildcard_constraints:
        d=r"\d+",
    log:
        "results/logs/lora_one/fig2/d={d}_seed={seed}.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig2/d={d}_seed={seed}.tsv"
    group: group_for("lora_one", "fig2")
    threads: threads_for("lora_one", "fig2")
    resources:
        mem_mb=mem_mb_for("lora_one", "fig2"),
        runtime=runtime_for("lora_one", "fig2"),
        gpu=gpu_for("lora_one", "fig2"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.fig2 --params {params.cfg:q} --root results > {log} 2>&1"


rule lora_one_fig3:
    output:
        lora_one_fig3_records(),
    params:
        cfg=lora_one_fig3_params,
    wildcard_constraints:
        g_form="squared_targets|gradient",
    log:
        "results/logs/lora_one/fig3/g_form={g_form}.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig3/g_form={g_form}.tsv"
    group: group_for("lora_one", "fig3")
    threads: threads_for("lora_one", "fig3")
    resources:
        mem_mb=mem_mb_for("lora_one", "fig3"),
        runtime=runtime_for("lora_one", "fig3"),
        gpu=gpu_for("lora_one", "fig3"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.fig3 --params {params.cfg:q} --root results > {log} 2>&1"


rule lora_one_fig4:
    output:
        lora_one_fig4_records(),
    params:
        cfg=lora_one_fig4_params,
    wildcard_constraints:
        r=r"\d+",
        r_star=r"\d+",
    log:
        "results/logs/lora_one/fig4/r={r}_r_star={r_star}.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig4/r={r}_r_star={r_star}.tsv"
    group: group_for("lora_one", "fig4")
    threads: threads_for("lora_one", "fig4")
    resources:
        mem_mb=mem_mb_for("lora_one", "fig4"),
        runtime=runtime_for("lora_one", "fig4"),
        gpu=gpu_for("lora_one", "fig4"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.fig4 --params {params.cfg:q} --root results > {log} 2>&1"


rule lora_one_prec_gd:
    output:
        lora_one_prec_gd_records(),
    params:
        cfg=lora_one_params("prec_gd"),
    log:
        "results/logs/lora_one/prec_gd.log",
    benchmark:
        "results/benchmarks/rules/lora_one/prec_gd.tsv"
    group: group_for("lora_one", "prec_gd")
    threads: threads_for("lora_one", "prec_gd")
    resources:
        mem_mb=mem_mb_for("lora_one", "prec_gd"),
        runtime=runtime_for("lora_one", "prec_gd"),
        gpu=gpu_for("lora_one", "prec_gd"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.prec_gd --params {params.cfg:q} --root results > {log} 2>&1"


rule lora_one_fig1c_pretrain:
    input:
        lora_one_fig1c_dataset(),
    output:
        checkpoint="results/lora_one/fig1c/pretrain/base/seed={seed}/checkpoint.pt",
        record="results/lora_one/fig1c/pretrain/base/seed={seed}/metrics.json",
    params:
        cfg=lora_one_seeded_params("fig1c"),
    log:
        "results/logs/lora_one/fig1c/pretrain_seed={seed}.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig1c/pretrain_seed={seed}.tsv"
    group: group_for("lora_one", "fig1c")
    threads: threads_for("lora_one", "fig1c")
    resources:
        mem_mb=mem_mb_for("lora_one", "fig1c"),
        runtime=runtime_for("lora_one", "fig1c"),
        gpu=gpu_for("lora_one", "fig1c"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.fig1c_pretrain --params {params.cfg:q} --root results"
        " --inputs {input} --outputs {output.checkpoint} > {log} 2>&1"


rule lora_one_fig1c:
    input:
        rules.lora_one_fig1c_pretrain.output.checkpoint,
    output:
        records=lora_one_fig1c_records(),
        landscape=lora_one_fig1c_landscape(),
    params:
        cfg=lora_one_seeded_params("fig1c"),
    log:
        "results/logs/lora_one/fig1c/finetune_seed={seed}.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig1c/finetune_seed={seed}.tsv"
    group: group_for("lora_one", "fig1c")
    threads: threads_for("lora_one", "fig1c")
    resources:
        mem_mb=mem_mb_for("lora_one", "fig1c"),
        runtime=runtime_for("lora_one", "fig1c"),
        gpu=gpu_for("lora_one", "fig1c"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.fig1c --params {params.cfg:q} --root results"
        " --inputs {input} --outputs {output.landscape} > {log} 2>&1"


for _exp in LORA_ONE_LM:
    for _task in lora_one_lm_tasks(_exp):

        rule:
            name:
                f"lora_one_{_exp}_{_task}"
            input:
                **lora_one_lm_assets(_exp, _task),
            output:
                records=lora_one_lm_records(_exp, _task),
            params:
                cfg=lora_one_lm_params(_exp),
                experiment=_exp,
                task=_task,
            log:
                f"results/logs/lora_one/{_exp}/{_task}.log",
            benchmark:
                f"results/benchmarks/rules/lora_one/{_exp}/{_task}.tsv"
            group: group_for("lora_one", _exp)
            threads: threads_for("lora_one", _exp)
            resources:
                mem_mb=mem_mb_for("lora_one", _exp),
                runtime=runtime_for("lora_one", _exp),
                gpu=gpu_for("lora_one", _exp),
            conda:
                ENV_CPU
            shell:
                "python -m lorarepro.experiments.lora_one.lm_runs --params {params.cfg:q} --experiment {params.experiment}"
                " --task {params.task} --threads {threads}"
                " --data-root $(dirname {input.data}) --models-root $(dirname {input.model})"
                " --root results > {log} 2>&1"


rule lora_one_table2:
    input:
        lora_one_lm_records("table2"),
    output:
        lora_one_table("table_2"),
        lora_one_table("table_4"),
    log:
        "results/logs/lora_one/table2.log",
    benchmark:
        "results/benchmarks/rules/lora_one/table2.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    params:
        scale=SCALE,
    shell:
        "python -m lorarepro.experiments.lora_one.lm_tables table2 --scale {params.scale} --inputs {input}"
        " --outputs {output} > {log} 2>&1"


rule lora_one_fig6:
    input:
        lora_one_lm_records("fig6"),
    output:
        figure_files("lora_one", "figure_6"),
    log:
        "results/logs/lora_one/fig6.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig6.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    params:
        scale=SCALE,
    shell:
        "python -m lorarepro.experiments.lora_one.lm_tables fig6 --scale {params.scale} --inputs {input}"
        " --outputs {output} > {log} 2>&1"


register(
    "lora_one",
    records=lora_one_lm_records("table2") + lora_one_lm_records("fig6"),
    tables=[lora_one_table("table_2"), lora_one_table("table_4")],
    figures=figure_files("lora_one", "figure_6"),
)


# ----------------------------------------------------------------------------------------------
# Figures and tables (from run records only)
LORA_ONE_PLOTS = {
    "fig2": (lora_one_fig2_records(), "figure_2", "table_fig2"),
    "fig2_traces": (lora_one_fig2_records(), "figure_2_traces", None),
    "fig3": ([p for g in settings("lora_one", "fig3")["g_forms"] for p in lora_one_fig3_records(g)], "figure_3", None),
    "fig4": ([p for case in settings("lora_one", "fig4")["cases"] for p in lora_one_fig4_records(**case)],
             "figure_4", "table_fig4"),
    "prec_gd": (lora_one_prec_gd_records(), "figure_thm_c21", "table_thm_c21"),
    "fig1c": ([p for s in seeds("lora_one", "fig1c")
               for p in lora_one_fig1c_records(s) + [lora_one_fig1c_landscape(s)]]
              + [f"results/lora_one/fig1c/pretrain/base/seed={s}/metrics.json" for s in seeds("lora_one", "fig1c")],
              "figure_1c", "table_fig1c"),
}

for _name, (_inputs, _figure, _table) in LORA_ONE_PLOTS.items():

    rule:
        name:
            f"lora_one_plot_{_name}"
        input:
            _inputs,
        output:
            figure_files("lora_one", _figure) + ([lora_one_table(_table)] if _table else []),
        params:
            figure=_name,
            scale=SCALE,
        log:
            f"results/logs/lora_one/plot_{_name}.log",
        benchmark:
            f"results/benchmarks/rules/lora_one/plot_{_name}.tsv"
        group: SUMMARIES_GROUP
        threads: 1
        resources:
            mem_mb=mem_mb_for(),
            runtime=runtime_for(),
        conda:
            ENV_REPORT
        shell:
            "python -m lorarepro.experiments.lora_one.plots {params.figure} --scale {params.scale}"
            " --inputs {input} --outputs {output} > {log} 2>&1"

    register(
        "lora_one", figures=figure_files("lora_one", _figure), tables=[lora_one_table(_table)] if _table else []
    )


register(
    "lora_one",
    records=sorted({p for _inputs, _, _ in LORA_ONE_PLOTS.values() for p in _inputs if p.endswith("metrics.json")}),
)


rule lora_one_synthetic:
    """The linear, ReLU and MNIST part of the paper alone (Figures 1c, 2, 3, 4, Theorem C.21): CPU
    minutes, no language model."""
    input:
        [path for _, figure, table in LORA_ONE_PLOTS.values()
         for path in figure_files("lora_one", figure) + ([lora_one_table(table)] if table else [])],


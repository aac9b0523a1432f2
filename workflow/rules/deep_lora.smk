# Rules of the deep_lora paper: experiments -> run records -> figures.
# (Registered with `register` so claims, reports and the `deep_lora` target pick them up.)
# Deep matrix factorization / completion: Figures 2, 3, 4, 5, 9 and 10 of the paper; few-shot
# fine-tuning of a language model through the engine: Figures 6, 7, 8 and Table 2.


rule deep_lora_fig2:
    output:
        deep_lora_records("fig2", deep_lora_runs("fig2", method="{method}")),
    params:
        cfg=deep_lora_fig2_params,
    log:
        "results/logs/deep_lora/fig2_{method}.log",
    benchmark:
        "results/benchmarks/rules/deep_lora/fig2_{method}.tsv"
    group: group_for("deep_lora", "fig2")
    threads: threads_for("deep_lora", "fig2")
    resources:
        mem_mb=mem_mb_for("deep_lora", "fig2"),
        runtime=runtime_for("deep_lora", "fig2"),
        gpu=gpu_for("deep_lora", "fig2"),
    conda:
        deep_lora_env("fig2")
    shell:
        "python -m lorarepro.experiments.deep_lora.width --params {params.cfg:q}"
        " --out results/deep_lora/fig2 --threads {threads} > {log} 2>&1"


rule deep_lora_fig3:
    output:
        deep_lora_records("fig3"),
    params:
        cfg=run_params("deep_lora", "fig3"),
    log:
        "results/logs/deep_lora/fig3.log",
    benchmark:
        "results/benchmarks/rules/deep_lora/fig3.tsv"
    group: group_for("deep_lora", "fig3")
    threads: threads_for("deep_lora", "fig3")
    resources:
        mem_mb=mem_mb_for("deep_lora", "fig3"),
        runtime=runtime_for("deep_lora", "fig3"),
        gpu=gpu_for("deep_lora", "fig3"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.deep_lora.svd_dynamics --params {params.cfg:q}"
        " --out results/deep_lora/fig3 --threads {threads} > {log} 2>&1"


rule deep_lora_fig4:
    output:
        deep_lora_records("fig4"),
    params:
        cfg=run_params("deep_lora", "fig4"),
    log:
        "results/logs/deep_lora/fig4.log",
    benchmark:
        "results/benchmarks/rules/deep_lora/fig4.tsv"
    group: group_for("deep_lora", "fig4")
    threads: threads_for("deep_lora", "fig4")
    resources:
        mem_mb=mem_mb_for("deep_lora", "fig4"),
        runtime=runtime_for("deep_lora", "fig4"),
        gpu=gpu_for("deep_lora", "fig4"),
    conda:
        deep_lora_env("fig4")
    shell:
        "python -m lorarepro.experiments.deep_lora.trajectories --params {params.cfg:q}"
        " --out results/deep_lora/fig4 --threads {threads} > {log} 2>&1"


rule deep_lora_fig5:
    output:
        deep_lora_records("fig5"),
    params:
        cfg=run_params("deep_lora", "fig5"),
    log:
        "results/logs/deep_lora/fig5.log",
    benchmark:
        "results/benchmarks/rules/deep_lora/fig5.tsv"
    group: group_for("deep_lora", "fig5")
    threads: threads_for("deep_lora", "fig5")
    resources:
        mem_mb=mem_mb_for("deep_lora", "fig5"),
        runtime=runtime_for("deep_lora", "fig5"),
        gpu=gpu_for("deep_lora", "fig5"),
    conda:
        deep_lora_env("fig5")
    shell:
        "python -m lorarepro.experiments.deep_lora.trajectories --params {params.cfg:q}"
        " --out results/deep_lora/fig5 --threads {threads} > {log} 2>&1"


rule deep_lora_fig9:
    output:
        deep_lora_records("fig9"),
    params:
        cfg=run_params("deep_lora", "fig9"),
    log:
        "results/logs/deep_lora/fig9.log",
    benchmark:
        "results/benchmarks/rules/deep_lora/fig9.tsv"
    group: group_for("deep_lora", "fig9")
    threads: threads_for("deep_lora", "fig9")
    resources:
        mem_mb=mem_mb_for("deep_lora", "fig9"),
        runtime=runtime_for("deep_lora", "fig9"),
        gpu=gpu_for("deep_lora", "fig9"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.deep_lora.nonlinear_gradient --params {params.cfg:q}"
        " --out results/deep_lora/fig9 --threads {threads} > {log} 2>&1"


rule deep_lora_fig10:
    output:
        deep_lora_records("fig10"),
    params:
        cfg=run_params("deep_lora", "fig10"),
    log:
        "results/logs/deep_lora/fig10.log",
    benchmark:
        "results/benchmarks/rules/deep_lora/fig10.tsv"
    group: group_for("deep_lora", "fig10")
    threads: threads_for("deep_lora", "fig10")
    resources:
        mem_mb=mem_mb_for("deep_lora", "fig10"),
        runtime=runtime_for("deep_lora", "fig10"),
        gpu=gpu_for("deep_lora", "fig10"),
    conda:
        deep_lora_env("fig10")
    shell:
        "python -m lorarepro.experiments.deep_lora.narrow --params {params.cfg:q}"
        " --out results/deep_lora/fig10 --threads {threads} > {log} 2>&1"


rule deep_lora_figures:
    input:
        deep_lora_figure_records(),
    output:
        deep_lora_figure_files(),
    log:
        "results/logs/deep_lora/figures.log",
    benchmark:
        "results/benchmarks/rules/deep_lora/figures.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.deep_lora.figures --records {input} --out {output} > {log} 2>&1"


rule deep_lora_synthetic:
    """The deep matrix factorization and completion part of the paper alone (Figures 2-5, 9, 10):
    CPU minutes, no language model."""
    input:
        rules.deep_lora_figures.output,


rule deep_lora_fewshot:
    input:
        deep_lora_lm_assets("fewshot"),
    output:
        deep_lora_fewshot_records("{method}"),
    params:
        cfg=run_params("deep_lora", "fewshot"),
    wildcard_constraints:
        n=r"\d+",
        r=r"\d+",
    log:
        "results/logs/deep_lora/fewshot_{method}_n={n}_r={r}.log",
    benchmark:
        "results/benchmarks/rules/deep_lora/fewshot_{method}_n={n}_r={r}.tsv"
    group: group_for("deep_lora", "fewshot")
    threads: threads_for("deep_lora", "fewshot")
    resources:
        mem_mb=mem_mb_for("deep_lora", "fewshot"),
        runtime=runtime_for("deep_lora", "fewshot"),
        gpu=gpu_for("deep_lora", "fewshot"),
    conda:
        deep_lora_env("fewshot")
    shell:
        "python -m lorarepro.experiments.deep_lora.finetune --params {params.cfg:q} --method {wildcards.method}"
        " --n {wildcards.n} --r {wildcards.r} --out results/deep_lora/fewshot --threads {threads}"
        " --data-root resources/data --models-root resources/models > {log} 2>&1"


rule deep_lora_lm_figures:
    input:
        deep_lora_fewshot_records(),
    output:
        figures=deep_lora_lm_figure_files(),
        table=DEEP_LORA_TABLE_2,
    params:
        cfg=run_params("deep_lora", "fewshot"),
    log:
        "results/logs/deep_lora/lm_figures.log",
    benchmark:
        "results/benchmarks/rules/deep_lora/lm_figures.tsv"
    group: SUMMARIES_GROUP
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.deep_lora.lm_figures --params {params.cfg:q} --records {input}"
        " --out {output.figures} --table {output.table} > {log} 2>&1"


register(
    "deep_lora",
    records=deep_lora_figure_records() + deep_lora_fewshot_records(),
    tables=[DEEP_LORA_TABLE_2],
    figures=deep_lora_figure_files() + deep_lora_lm_figure_files(),
)

# LoRA-One's synthetic experiments: linear-task toys (Figures 2-4, Theorem C.21) and MNIST (Figure 1c).
# Each experiment job batches its seeds and writes one run record per (setting, seed); the plot
# jobs turn records into a figure and a summary table.


rule lora_one_fig2:
    output:
        lora_one_fig2_records(),
    params:
        cfg=lora_one_fig2_params,
    log:
        "results/logs/lora_one/fig2_d{d}.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig2_d{d}.tsv"
    threads: threads_for("lora_one", "fig2")
    resources:
        mem_mb=mem_mb_for("lora_one", "fig2"),
        runtime=runtime_for("lora_one", "fig2"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.fig2 --params {params.cfg:q} > {log} 2>&1"


rule lora_one_fig3:
    output:
        lora_one_records("fig3"),
    params:
        cfg=lora_one_params("fig3"),
    log:
        "results/logs/lora_one/fig3.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig3.tsv"
    threads: threads_for("lora_one", "fig3")
    resources:
        mem_mb=mem_mb_for("lora_one", "fig3"),
        runtime=runtime_for("lora_one", "fig3"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.fig3 --params {params.cfg:q} > {log} 2>&1"


rule lora_one_fig4:
    output:
        lora_one_fig4_records(),
    params:
        cfg=lora_one_fig4_params,
    log:
        "results/logs/lora_one/fig4_{case}.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig4_{case}.tsv"
    threads: threads_for("lora_one", "fig4")
    resources:
        mem_mb=mem_mb_for("lora_one", "fig4"),
        runtime=runtime_for("lora_one", "fig4"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.fig4 --params {params.cfg:q} > {log} 2>&1"


rule lora_one_kappa:
    output:
        lora_one_records("kappa"),
    params:
        cfg=lora_one_params("kappa"),
    log:
        "results/logs/lora_one/kappa.log",
    benchmark:
        "results/benchmarks/rules/lora_one/kappa.tsv"
    threads: threads_for("lora_one", "kappa")
    resources:
        mem_mb=mem_mb_for("lora_one", "kappa"),
        runtime=runtime_for("lora_one", "kappa"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.kappa --params {params.cfg:q} > {log} 2>&1"


rule lora_one_fig1c:
    input:
        lora_one_fig1c_dataset,
    output:
        lora_one_records("fig1c"),
        lora_one_landscapes(),
    params:
        cfg=lora_one_params("fig1c"),
    log:
        "results/logs/lora_one/fig1c.log",
    benchmark:
        "results/benchmarks/rules/lora_one/fig1c.tsv"
    threads: threads_for("lora_one", "fig1c")
    resources:
        mem_mb=mem_mb_for("lora_one", "fig1c"),
        runtime=runtime_for("lora_one", "fig1c"),
        gpu=gpu_for("lora_one", "fig1c"),
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.experiments.lora_one.mnist --params {params.cfg:q} --inputs {input} > {log} 2>&1"


rule lora_one_plot:
    input:
        lora_one_figure_records,
    output:
        figures=figure_files("lora_one", "{figure}"),
        table="results/lora_one/tables/{figure}.csv",
        markdown="results/lora_one/tables/{figure}.md",
    params:
        experiment=lora_one_experiment_of,
        scale=SCALE,
    wildcard_constraints:
        figure="|".join(LORA_ONE_FIGURES.values()),
    log:
        "results/logs/lora_one/plot_{figure}.log",
    benchmark:
        "results/benchmarks/rules/lora_one/plot_{figure}.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.experiments.lora_one.plots {params.experiment} --records {input}"
        " --outputs {output.figures} --table {output.table} --scale {params.scale} > {log} 2>&1"


register(
    "lora_one",
    records=[r for e in LORA_ONE_FIGURES for r in lora_one_records(e)],
    tables=[f"results/lora_one/tables/{f}.csv" for f in LORA_ONE_FIGURES.values()],
    figures=[p for f in LORA_ONE_FIGURES.values() for p in figure_files("lora_one", f)],
)

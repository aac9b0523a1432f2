# Claims -> scorecard -> papermill reports -> HTML. Included last, after every paper has
# registered its records, tables and figures.


rule check_claims:
    input:
        claims="workflow/claims/{paper}.yaml",
        records=paper_records_of,
    output:
        "results/{paper}/claims.csv",
    params:
        scale=SCALE,
    log:
        "results/logs/{paper}/check_claims.log",
    benchmark:
        "results/benchmarks/rules/{paper}/check_claims.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    localrule: True
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.report.claims {wildcards.paper} {input.claims} {output} --scale {params.scale}"
        " --records {input.records} > {log} 2>&1"


rule scorecard:
    input:
        expand("results/{paper}/claims.csv", paper=ENABLED_PAPERS),
    output:
        "results/scorecard.csv",
    log:
        "results/logs/scorecard.log",
    benchmark:
        "results/benchmarks/rules/scorecard.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    localrule: True
    conda:
        ENV_REPORT
    shell:
        "python -m lorarepro.report.scorecard {output} {input} > {log} 2>&1"

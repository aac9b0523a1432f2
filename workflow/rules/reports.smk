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


rule paper_report:
    input:
        notebook="workflow/notebooks/paper.ipynb",
        claims="results/{paper}/claims.csv",
        spec=report_spec_of,
        products=paper_products_of,
    output:
        notebook="results/{paper}/report.ipynb",
        html="reports/{paper}.html",
    params:
        scale=SCALE,
    log:
        "results/logs/{paper}/paper_report.log",
    benchmark:
        "results/benchmarks/rules/{paper}/paper_report.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    localrule: True
    conda:
        ENV_REPORT
    shell:
        "(papermill {input.notebook} {output.notebook} -k python3 --cwd . -p paper {wildcards.paper}"
        " -p scale {params.scale} -p root . && jupyter nbconvert --to html --no-input"
        " --output-dir reports --output {wildcards.paper} {output.notebook}) > {log} 2>&1"


rule index_report:
    input:
        notebook="workflow/notebooks/index.ipynb",
        scorecard="results/scorecard.csv",
        reports=expand("reports/{paper}.html", paper=ENABLED_PAPERS),
        leaderboard=leaderboard_products(),
    output:
        notebook="results/index.ipynb",
        html="reports/index.html",
    params:
        scale=SCALE,
        papers=",".join(ENABLED_PAPERS),
    log:
        "results/logs/index_report.log",
    benchmark:
        "results/benchmarks/rules/index_report.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb_for(),
        runtime=runtime_for(),
    localrule: True
    conda:
        ENV_REPORT
    shell:
        "(papermill {input.notebook} {output.notebook} -k python3 --cwd . -p scale {params.scale}"
        " -p papers {params.papers} -p root . && jupyter nbconvert --to html --no-input"
        " --output-dir reports --output index {output.notebook}) > {log} 2>&1"


rule reports:
    """Every HTML report: one per paper and the index."""
    input:
        report_targets(),


rule regenerate_paper_figures:
    """Every figure and table of the enabled papers (no reports)."""
    input:
        [paper_products(paper) for paper in ENABLED_PAPERS],


for _paper in PAPERS:

    rule:
        name:
            _paper
        input:
            paper_products(_paper),
            f"results/{_paper}/claims.csv",
            f"reports/{_paper}.html",

# lorarepro: regenerate every figure and table of five LoRA papers and check each number.
#   snakemake --cores 2                      everything at the scale set in config.yaml
#   snakemake --cores 2 nora                 one paper          (meta_lora ntk_lora lora_one nora deep_lora)
#   snakemake --cores 2 regenerate_paper_figures | reports | resources | leaderboard
#   snakemake --config scale=smoke           tiny sizes, the whole DAG in minutes
from snakemake.utils import min_version

min_version("9.12")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/common/leaderboard.smk"


wildcard_constraints:
    seed=r"\d+",
    dataset="|".join(DATASETS),
    model="|".join(MODELS),
    paper="|".join(PAPERS),


include: "workflow/rules/data.smk"
include: "workflow/rules/meta_lora.smk"
include: "workflow/rules/ntk_lora.smk"
include: "workflow/rules/lora_one.smk"
include: "workflow/rules/nora.smk"
include: "workflow/rules/deep_lora.smk"
include: "workflow/rules/leaderboard.smk"
include: "workflow/rules/reports.smk"


rule all:
    default_target: True
    input:
        all_targets(),

"""Every pretrained model the workflow knows: its architecture family, bundled copy and hub id."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # encoder | decoder | encoder_decoder | vision | audio
    hub_id: str
    description: str
    bundled: str | None = None  # the materialiser of the offline copy, if there is one
    gated: bool = False
    revision: str | None = None  # a hub commit, where the main branch lacks safetensors weights


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("minilm_l6", "encoder", "sentence-transformers/all-MiniLM-L6-v2",
                  "MiniLM-L6 (BERT, 6 layers, d=384, 22.7M): stands in for BERT-base / RoBERTa / T5 encoders",
                  bundled="minilm_folder"),
        ModelSpec("smollm2_135m", "decoder", "HuggingFaceTB/SmolLM2-135M-Instruct",
                  "SmolLM2-135M-Instruct (LLaMA architecture, 30 blocks, d=576): stands in for LLaMA-2 / OPT",
                  bundled="smollm2_gguf"),
        ModelSpec("bert_base_cased", "encoder", "google-bert/bert-base-cased", "BERT-base cased (Deep LoRA Table 1)"),
        ModelSpec("roberta_base", "encoder", "FacebookAI/roberta-base", "RoBERTa-base (NTK-LoRA, Meta-LoRA)"),
        ModelSpec("roberta_large", "encoder", "FacebookAI/roberta-large", "RoBERTa-large (NTK-LoRA appendix)"),
        ModelSpec("t5_base", "encoder_decoder", "google-t5/t5-base", "T5-base (LoRA-One Table 2, Deep LoRA Table 3)"),
        ModelSpec("opt_1_3b", "decoder", "facebook/opt-1.3b", "OPT-1.3B (NoRA Table 4)"),
        ModelSpec("llama2_7b", "decoder", "meta-llama/Llama-2-7b-hf", "LLaMA-2-7B (NoRA Table 2, LoRA-One Table 3)",
                  gated=True),
        ModelSpec("vit_base", "vision", "google/vit-base-patch16-224-in21k", "ViT-base (NTK-LoRA image task)"),
        # main has only pickled weights; this commit is the hub's safetensors conversion of them (refs/pr/2)
        ModelSpec("wav2vec2_base", "audio", "facebook/wav2vec2-base", "wav2vec2-base (NTK-LoRA speech task)",
                  revision="9f0eb264dec63c8511a7905d0a854ca6d2a39e45"),
    ]
}


def model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models are {sorted(MODELS)}")
    return MODELS[name]

"""Prefix tuning in the engine, on tiny random models (no download): a LLaMA with grouped-query attention
(4 query heads sharing 2 key/value heads; rotary positions, SmolLM2's architecture) and an OPT (learned
positions read from the attention mask; the paper's model).

The init from real activations makes the prefix the keys and values the base model computes for n
random tokens x; since a causal model's keys and values at x do not depend on what follows, the
prefixed model on a prompt p must score exactly as the base model on x + p. That identity is checked
for every objective the prompted, cloze and generation tasks use (the fast last-token path with left
padding and position ids, the continuation log-likelihoods, the LM loss, greedy decoding), so the
prefix, the attention mask PEFT extends and the shifted positions are all exercised."""

from __future__ import annotations

import copy

import pytest
import torch

from lorarepro.adapters.build import build_adapter
from lorarepro.adapters.prefix import prefix_embedding
from lorarepro.data.tasks import TaskData
from lorarepro.optim.lora_optimizers import build_optimizer
from lorarepro.train.loop import TrainConfig, train
from lorarepro.train.objectives import make_objective

VOCAB, N_PREFIX, PAD = 40, 3, 0
SPEC = {"init": "prefix", "init_options": {"num_virtual_tokens": N_PREFIX, "init_from": "real_activations"}}


@pytest.fixture(scope="module", params=["llama_gqa", "opt"])
def base(request):
    from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    if request.param == "opt":
        config = OPTConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=48,
                           word_embed_proj_dim=32, max_position_embeddings=64, pad_token_id=PAD, bos_token_id=2,
                           eos_token_id=1, dropout=0.0, attention_dropout=0.0)
        return OPTForCausalLM(config).eval()
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64,
                         pad_token_id=PAD, bos_token_id=None, eos_token_id=1, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def kv_heads(model) -> int:
    return getattr(model.config, "num_key_value_heads", model.config.num_attention_heads)


def prefixed(base, seed: int = 0):
    model, info = build_adapter(copy.deepcopy(base), SPEC, seed=seed, task_type="CAUSAL_LM")
    return model, info


def prefix_tokens(seed: int = 0) -> list[int]:
    """The tokens whose activations initialise the prefix (the init's draw, repeated)."""
    return torch.randint(VOCAB, (1, N_PREFIX), generator=torch.Generator().manual_seed(seed))[0].tolist()


PROMPTS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15, 16, 17, 18], [19, 20, 21]]


def prompted(examples, candidates=((22,), (23,))):
    return make_objective(TaskData("prompted", examples, examples, ["accuracy"], PAD, num_labels=len(candidates),
                                   candidates=[list(c) for c in candidates]),
                          model_kind="causal_lm", device="cpu")


def test_init_is_the_real_activations_in_peft_layout(base):
    model, _ = prefixed(base)
    ids = torch.tensor([prefix_tokens()])
    expected = base(input_ids=ids, use_cache=True).past_key_values
    prompt = model.get_prompt(batch_size=1)  # PEFT's own reading of its prefix embedding
    assert len(prompt.layers) == base.config.num_hidden_layers
    for got, want in zip(prompt.layers, expected.layers):
        assert got.keys.shape == (1, kv_heads(base), N_PREFIX, 8)  # LLaMA: the 2 key/value heads, not the 4 query heads
        torch.testing.assert_close(got.keys, want.keys, rtol=0, atol=0)
        torch.testing.assert_close(got.values, want.values, rtol=0, atol=0)


def test_only_the_prefix_is_trainable(base):
    model, info = prefixed(base)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["prompt_encoder.default.embedding.weight"]
    assert info.trainable_params == N_PREFIX * 2 * 2 * kv_heads(base) * 8  # tokens × layers × (k, v) × kv heads × head dim
    assert info.targets == []


def test_prompted_scores_equal_the_base_model_on_prefix_plus_prompt(base):
    model, _ = prefixed(base)
    x = prefix_tokens()
    examples = [{"input_ids": p, "label": i % 2} for i, p in enumerate(PROMPTS)]
    with torch.no_grad():
        ours = prompted(examples).scores(model, examples)
        extended = [{**e, "input_ids": x + e["input_ids"]} for e in examples]
        theirs = prompted(extended).scores(base, extended)
        plain = prompted(examples).scores(base, examples)
    torch.testing.assert_close(ours, theirs)
    assert not torch.allclose(ours, plain)  # the prefix does change the scores


def test_sequence_scores_and_cloze_equal_the_base_model_on_prefix_plus_prompt(base):
    model, _ = prefixed(base)
    x = prefix_tokens()
    examples = [{"input_ids": p, "label": 0, "choices": [[22, 23], [24]], "answers": [0]} for p in PROMPTS]
    extended = [{**e, "input_ids": x + e["input_ids"]} for e in examples]
    with torch.no_grad():
        multi = prompted(examples, candidates=((22, 23), (24,)))  # multi-token label words: the slow path
        torch.testing.assert_close(multi.scores(model, examples),
                                   prompted(extended, candidates=((22, 23), (24,))).scores(base, extended))
        cloze = lambda ex: make_objective(TaskData("cloze", ex, ex, ["accuracy"], PAD), model_kind="causal_lm",  # noqa: E731
                                          device="cpu", score_batch=3)
        torch.testing.assert_close(cloze(examples).scores(model, examples), cloze(extended).scores(base, extended))
        torch.testing.assert_close(cloze(examples).loss(model, examples), cloze(extended).loss(base, extended))


class _Ids:
    """A tokenizer stand-in for decoding: the generated ids as text."""

    @staticmethod
    def batch_decode(rows, skip_special_tokens=True):
        return [" ".join(str(i) for i in row.tolist() if i != PAD) for row in rows]


def test_generation_loss_and_decoding_equal_the_base_model_on_prefix_plus_prompt(base):
    model, _ = prefixed(base)
    x = prefix_tokens()
    target = [25, 26, 1]
    examples = [{"input_ids": p + target, "labels": [-100] * len(p) + target, "prompt_length": len(p),
                 "reference": ""} for p in PROMPTS]
    extended = [{**e, "input_ids": x + e["input_ids"], "labels": [-100] * N_PREFIX + e["labels"],
                 "prompt_length": N_PREFIX + e["prompt_length"]} for e in examples]

    def generation(ex):
        return make_objective(TaskData("generation", ex, ex, ["exact_match"], PAD), model_kind="causal_lm",
                              device="cpu", tokenizer=_Ids(), max_new_tokens=4)

    with torch.no_grad():
        torch.testing.assert_close(generation(examples).loss(model, examples), generation(extended).loss(base, extended))
        assert generation(examples).predict(model, examples) == generation(extended).predict(base, extended)


def test_training_moves_the_prefix_only(base):
    """A few steps of the engine's loop (every step on all four examples) lower the loss and move the
    prefix, and nothing else."""
    model, _ = prefixed(base)
    examples = [{"input_ids": p, "label": i % 2, "index": i} for i, p in enumerate(PROMPTS)]
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    start = prefix_embedding(model).detach().clone()
    config = TrainConfig(steps=5, batch_size=len(examples), eval_at_start=False, progress=False)
    result = train(model, prompted(examples), build_optimizer(model, {"name": "adamw", "lr": 1e-2}), config, seed=0)
    losses = [row["loss"] for row in result.trace if "loss" in row]
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert not torch.equal(prefix_embedding(model), start)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)


def test_prefix_needs_a_causal_lm(base):
    with pytest.raises(ValueError, match="causal language models"):
        build_adapter(copy.deepcopy(base), SPEC, seed=0, task_type=None)

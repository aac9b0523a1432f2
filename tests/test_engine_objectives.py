"""Objectives on tiny decoders, encoders and encoder-decoders: label-word scores read at the right
position whatever the padding, sequence log-likelihoods, generation, and the task metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import engine_tiny
from lorarepro.data.tasks import load_task
from lorarepro.metrics import tasks as metrics
from lorarepro.models.load import load_model, load_tokenizer
from lorarepro.train.objectives import make_objective, predict_all

PROMPT = {"kind": "prompted", "template": "the review : {text} . sentiment :", "label_words": [" negative", " positive"]}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"root": root, "data": engine_tiny.datasets(root), "llama": engine_tiny.llama_folder(root)}


def decoder(assets, task):
    tokenizer = load_tokenizer(str(assets["llama"]))
    data = load_task({"dataset": str(assets["data"]["sentiment"]), **task}, tokenizer, model_kind="causal_lm")
    torch.manual_seed(0)
    model = load_model({"name": str(assets["llama"]), "kind": "causal_lm", "dtype": "float64"}).eval()
    return model, make_objective(data, model_kind="causal_lm", device="cpu", tokenizer=tokenizer)


def unpadded_logprob(model, prompt, continuation):
    """log p(continuation | prompt) from one unpadded sequence."""
    ids = torch.tensor([prompt + continuation])
    logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    return sum(logp[len(prompt) - 1 + i, tok].item() for i, tok in enumerate(continuation))


def test_label_word_scores_are_read_after_each_prompt_despite_left_padding(assets):
    model, objective = decoder(assets, PROMPT)
    examples = objective.data.eval[:6]
    assert len({len(e["input_ids"]) for e in examples}) > 1  # the batch really is padded
    with torch.no_grad():
        fast = objective.scores(model, examples)
        general = objective._sequence_scores(model, examples, objective.data.candidates)
        manual = torch.tensor([[unpadded_logprob(model, e["input_ids"], c) for c in objective.data.candidates]
                               for e in examples], dtype=torch.float64)
    torch.testing.assert_close(fast, manual, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(general, manual, rtol=1e-9, atol=1e-9)


def test_multi_token_label_words_sum_their_tokens(assets):
    model, objective = decoder(assets, {**PROMPT, "label_words": [" very bad", " really quite good"]})
    assert [len(c) for c in objective.data.candidates] == [2, 3]
    examples = objective.data.eval[:4]
    with torch.no_grad():
        got = objective.scores(model, examples)
        manual = torch.tensor([[unpadded_logprob(model, e["input_ids"], c) for c in objective.data.candidates]
                               for e in examples], dtype=torch.float64)
    torch.testing.assert_close(got, manual, rtol=1e-9, atol=1e-9)
    loss = objective.loss(model, examples)
    labels = torch.tensor([e["label"] for e in examples])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(manual, labels))


def test_generation_trains_on_the_target_and_decodes_greedily(assets):
    task = {"kind": "generation", "template": "{text} . paraphrase :", "target": " {text}", "max_target_length": 8}
    model, objective = decoder(assets, task)
    examples = objective.data.train[:3]
    first = examples[0]
    assert first["labels"][: first["prompt_length"]] == [-100] * first["prompt_length"]
    assert first["input_ids"][-1] == objective.tokenizer.eos_token_id
    with torch.no_grad():
        loss = objective.loss(model, examples[:1])
        prompt, target = first["input_ids"][: first["prompt_length"]], first["input_ids"][first["prompt_length"]:]
        expected = -unpadded_logprob(model, prompt, target) / len(target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)  # transformers computes this loss in float32
    preds, refs = predict_all(model, objective, objective.data.eval[:5], batch_size=2)
    assert len(preds) == 5 and all(isinstance(p, str) for p in preds)
    assert refs == [e["reference"] for e in objective.data.eval[:5]]
    with torch.no_grad():  # greedy decoding of a left-padded batch equals decoding each prompt alone
        alone = [objective.predict(model, [e])[0] for e in objective.data.eval[:5]]
    assert preds == alone


def test_masked_lm_reads_the_mask_slot(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = engine_tiny.tokenizer(tmp_path / "mlm")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=48, max_position_embeddings=64)
    BertForMaskedLM(config).save_pretrained(tmp_path / "mlm")
    data_dir = engine_tiny.datasets(tmp_path)["sentiment"]
    data = load_task({"dataset": str(data_dir), "kind": "prompted", "template": "{text} . it was {mask}",
                      "label_words": ["bad", "good"]}, tokenizer, model_kind="masked_lm")
    model = load_model({"name": str(tmp_path / "mlm"), "kind": "masked_lm"}).eval()
    objective = make_objective(data, model_kind="masked_lm", device="cpu", tokenizer=tokenizer)
    examples = data.eval[:3]
    with torch.no_grad():
        got = objective.scores(model, examples)
        for row, e in zip(got, examples):
            ids = torch.tensor([e["input_ids"]])
            slot = e["input_ids"].index(tokenizer.mask_token_id)
            logp = model(input_ids=ids).logits[0, slot].log_softmax(-1)
            torch.testing.assert_close(row, logp[[c[0] for c in data.candidates]])


def test_seq2seq_scores_and_generates(tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    folder = tmp_path / "t5"
    tokenizer = engine_tiny.tokenizer(folder)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=48, d_kv=16, num_layers=1, num_heads=2,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    data_dir = engine_tiny.datasets(tmp_path)["sentiment"]
    model = load_model({"name": str(folder), "kind": "seq2seq_lm"}).eval()
    data = load_task({"dataset": str(data_dir), **PROMPT}, tokenizer, model_kind="seq2seq_lm")
    objective = make_objective(data, model_kind="seq2seq_lm", device="cpu", tokenizer=tokenizer)
    with torch.no_grad():
        got = objective.scores(model, data.eval[:2])
        e, c = data.eval[0], data.candidates[1]
        out = model(input_ids=torch.tensor([e["input_ids"]]), labels=torch.tensor([c]))
        assert got[0, 1].item() == pytest.approx(-out.loss.item() * len(c), rel=1e-5)
    gen = load_task({"dataset": str(data_dir), "kind": "generation", "template": "{text}", "target": "{text}"},
                    tokenizer, model_kind="seq2seq_lm")
    objective = make_objective(gen, model_kind="seq2seq_lm", device="cpu", tokenizer=tokenizer, max_new_tokens=4)
    assert torch.isfinite(objective.loss(model, gen.train[:4]))
    preds, _ = predict_all(model, objective, gen.eval[:3], batch_size=3)
    assert all(isinstance(p, str) for p in preds)


def test_regression_predictions_come_back_on_the_label_scale(tmp_path):
    folder = engine_tiny.bert_folder(tmp_path)
    data = load_task({"dataset": str(engine_tiny.datasets(tmp_path)["similarity"]), "kind": "regression"},
                     load_tokenizer(str(folder)))
    model = load_model({"name": str(folder)}, num_labels=1).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(1.0)  # a standardised prediction of +1 σ
    objective = make_objective(data, model_kind="encoder", device="cpu")
    preds, refs = predict_all(model, objective, data.eval, batch_size=8)
    assert preds == pytest.approx([data.label_mean + data.label_std] * len(preds))
    assert refs == [e["label"] for e in data.eval]


def test_metrics():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
    assert metrics.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert metrics.f1([1, 0, 1, 1], [1, 1, 1, 0]) == pytest.approx(2 / 3)
    assert metrics.exact_match(["The Answer.", "b"], ["answer", "c"]) == 0.5
    assert metrics.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert 0 < metrics.rouge_l(["the cat sat"], ["the cat sat on the mat"]) < 1
    assert np.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))
    with pytest.raises(KeyError, match="unknown metrics"):
        metrics.score(["accuracy", "bogus"], [1], [1])

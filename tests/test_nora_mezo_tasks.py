"""NoRA's paper-scale Table 4 tasks beyond fixed label words, as MeZO runs them: ReCoRD as a cloze
(each example's entities fill the query's placeholder, the most likely continuation wins) and SQuAD as
generation scored by token F1 and exact match, on hub-shaped rows and a tiny random LLaMA."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import engine_tiny
from lorarepro.data.catalog import dataset_spec
from lorarepro.data.tasks import load_task
from lorarepro.experiments.nora.grid import lm_tasks
from lorarepro.experiments.nora.tables import PAPER_TABLE_4, lm_table
from lorarepro.metrics import tasks as metrics
from lorarepro.models.load import load_model, load_tokenizer
from lorarepro.train.objectives import make_objective
from lorarepro.train.run import finetune, load

ROOT = Path(__file__).resolve().parents[1]
RECORD = {"kind": "cloze", "template": "{passage}\n-", "option": " {query}", "placeholder": "@placeholder",
          "max_length": 48}
SQUAD = {"kind": "generation", "template": "Title: {title}\nContext: {context}\nQuestion: {question}\nAnswer:",
         "target": " {answer}\n", "references": "answers", "stop": "\n", "metrics": ["token_f1", "exact_match"],
         "max_length": 48, "max_target_length": 6}


def record_hub_rows(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """super_glue/record rows: passage with @highlight lines, query with @placeholder, entities, answers."""
    rows = []
    for i in range(n):
        entities = list(rng.choice(["movie", "film", "plot", "actor", "scene", "story"], 3, replace=False))
        rows.append({"passage": f"the {entities[0]} was good . the {entities[1]} was dull\n@highlight\nthe {entities[2]} is fun",
                     "query": "the @placeholder was very good", "entities": entities, "answers": [entities[0]],
                     "entity_spans": {"start": [4], "end": [9], "text": [entities[0]]}, "idx": {"passage": i, "query": i}})
    return pd.DataFrame(rows)


def squad_hub_rows(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """squad rows: id, title, context, question, answers {text, answer_start}."""
    rows = []
    for i in range(n):
        word = str(rng.choice(["good", "great", "awful", "dull"]))
        rows.append({"id": str(i), "title": "review", "context": f"the movie was {word} .", "question": " the movie was ",
                     "answers": {"text": np.array([word, f"very {word}"]), "answer_start": np.array([14, 9])}})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mezo")
    rng = np.random.default_rng(0)
    convert = {name: dataset_spec(name).hub.convert for name in ("record", "squad")}
    data = {
        "record": engine_tiny.write_dataset(root / "record", {split: convert["record"](record_hub_rows(n, rng))
                                                              for split, n in (("train", 8), ("validation", 6))}),
        "squad": engine_tiny.write_dataset(root / "squad", {split: convert["squad"](squad_hub_rows(n, rng))
                                                            for split, n in (("train", 8), ("validation", 6))}),
    }
    return {"data": data, "llama": engine_tiny.llama_folder(root)}


# -- metrics -------------------------------------------------------------------------------------------
def test_token_f1_and_exact_match_on_hand_computed_cases():
    # "The Cat sat." -> [cat, sat]; "a cat sat on the mat" -> [cat, sat, on, mat]: P = 1, R = 1/2, F1 = 2/3
    assert metrics.token_f1(["The Cat sat."], ["a cat sat on the mat"]) == pytest.approx(2 / 3)
    # words are a multiset: [cat, cat, dog] and [cat] share one cat, P = 1/3, R = 1, F1 = 1/2
    assert metrics.token_f1(["cat cat dog"], ["cat"]) == pytest.approx(0.5)
    assert metrics.token_f1(["no overlap"], ["other words"]) == 0.0
    # the best answer counts, per question; then the mean over questions
    assert metrics.token_f1(["Denver Broncos", "x"], [["Broncos", "the Denver Broncos!"], ["y"]]) == pytest.approx(0.5)
    assert metrics.exact_match(["  The  Denver Broncos. "], [["Broncos", "denver broncos"]]) == 1.0
    assert metrics.exact_match(["Broncos"], [["Denver Broncos"]]) == 0.0
    assert metrics.exact_match(["The Answer.", "b"], ["answer", "c"]) == 0.5  # plain references as before


def test_accuracy_counts_a_prediction_among_several_answers():
    assert metrics.accuracy([2, 0, 1], [[2], [1, 3], [0, 1]]) == pytest.approx(2 / 3)
    assert metrics.accuracy([1, 0], [1, 1]) == 0.5


# -- the hub rows as our layout ---------------------------------------------------------------------------
def test_record_rows_become_passage_query_candidates_answers():
    out = dataset_spec("record").hub.convert(record_hub_rows(2, np.random.default_rng(1)))
    assert list(out.columns) == ["passage", "query", "candidates", "answers"]
    assert "@highlight" not in out["passage"].iloc[0] and "\n- the" in out["passage"].iloc[0]
    assert out["answers"].iloc[0] == [out["candidates"].iloc[0][0]]


def test_squad_rows_keep_every_answer_and_train_on_the_first():
    out = dataset_spec("squad").hub.convert(squad_hub_rows(2, np.random.default_rng(1)))
    assert out["answers"].iloc[0] == [out["answer"].iloc[0], "very " + out["answer"].iloc[0]]
    assert out["question"].iloc[0] == "the movie was"


# -- ReCoRD as a cloze ---------------------------------------------------------------------------------------
def test_cloze_examples_fill_the_placeholder_with_each_candidate(assets):
    tok = load_tokenizer(str(assets["llama"]))
    data = load_task({**RECORD, "dataset": str(assets["data"]["record"])}, tok, model_kind="causal_lm")
    frame = pd.read_parquet(assets["data"]["record"] / "validation.parquet")
    for example, (_, row) in zip(data.eval, frame.iterrows()):
        texts = [tok.decode(c).strip() for c in example["choices"]]
        assert texts == [row["query"].replace("@placeholder", c) for c in row["candidates"]]
        assert example["answers"] == [list(row["candidates"]).index(row["answers"][0])] == [example["label"]]
        assert example["input_ids"] == tok(row["passage"] + "\n-")["input_ids"]  # MeZO's prompt, uncut
    assert data.metrics == ["accuracy"]


def test_cloze_missing_answer_joins_the_candidates(assets):
    tok = load_tokenizer(str(assets["llama"]))
    rows = pd.DataFrame([{"passage": "the film", "query": "a @placeholder", "candidates": ["film"], "answers": ["plot"]}])
    folder = engine_tiny.write_dataset(assets["data"]["record"].parent / "missing", {"train": rows, "validation": rows})
    example = load_task({**RECORD, "dataset": str(folder)}, tok, model_kind="causal_lm").eval[0]
    assert len(example["choices"]) == 2 and example["answers"] == [1]


def test_cloze_scores_are_mean_token_log_likelihoods_and_train_on_the_answer(assets):
    tok = load_tokenizer(str(assets["llama"]))
    data = load_task({**RECORD, "dataset": str(assets["data"]["record"])}, tok, model_kind="causal_lm")
    model = load_model({"name": str(assets["llama"]), "kind": "causal_lm"}).eval()
    examples = data.eval[:3]
    # one continuation at a time, no padding: log p(option | prompt) / len(option)
    expected = []
    for e in examples:
        row = []
        for option in e["choices"]:
            ids = torch.tensor([e["input_ids"] + option])
            logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
            targets = ids[0, 1:]
            picked = logp[torch.arange(len(targets)), targets][-len(option):]
            row.append(picked.mean().item())
        expected.append(row)
    with torch.no_grad():
        for train_as in ("lm", "classification"):
            objective = make_objective(data, model_kind="causal_lm", device="cpu", tokenizer=tok,
                                       train_as=train_as, score_batch=2)  # chunks that split examples
            scores = objective.scores(model, examples)
            assert torch.allclose(scores, torch.tensor(expected), atol=1e-5)
            assert objective.predict(model, examples) == [int(np.argmax(r)) for r in expected]
            loss = objective.loss(model, examples).item()
            if train_as == "classification":
                target = -np.mean([r[e["label"]] - math.log(np.exp(r).sum()) for r, e in zip(expected, examples)])
            else:  # token-mean LM loss over the correct continuations
                lengths = [len(e["choices"][e["label"]]) for e in examples]
                target = -sum(r[e["label"]] * n for r, e, n in zip(expected, examples, lengths)) / sum(lengths)
            assert loss == pytest.approx(target, abs=1e-5)


# -- the engine end to end -------------------------------------------------------------------------------------
def params(assets, task):
    return {"paper": "nora", "experiment": "table4", "method": "lora", "seed": 0, "scale": "smoke", "device": "cpu",
            "threads": 1, "model": {"name": str(assets["llama"]), "kind": "causal_lm"}, "task": task,
            "adapter": {"init": "default", "r": 2, "alpha": 4, "targets": ["q_proj", "v_proj"], "dropout": 0.0},
            "optimizer": {"name": "adamw", "lr": 1e-2},
            "train": {"steps": 2, "batch_size": 4, "eval_batch_size": 4, "progress": False}}


def test_record_and_squad_run_through_the_engine(assets, tmp_path):
    record = finetune(params(assets, {**RECORD, "dataset": str(assets["data"]["record"])}), tmp_path / "record")
    assert 0.0 <= record["metrics"]["accuracy"] <= 1.0 and "init_accuracy" in record["metrics"]
    squad = finetune(params(assets, {**SQUAD, "dataset": str(assets["data"]["squad"])}), tmp_path / "squad")
    assert {"token_f1", "exact_match", "best_token_f1"} <= set(squad["metrics"])
    assert squad["metrics"]["exact_match"] <= squad["metrics"]["token_f1"] <= 1.0


def test_squad_references_are_every_answer_and_predictions_stop_at_a_newline(assets):
    model, tok, data, objective = load(params(assets, {**SQUAD, "dataset": str(assets["data"]["squad"])}))
    frame = pd.read_parquet(assets["data"]["squad"] / "validation.parquet")
    assert [objective.reference(e) for e in data.eval] == [list(a) for a in frame["answers"]]
    assert objective.stop == "\n" and objective.max_new_tokens == 6
    predictions = objective.predict(model, data.eval[:4])
    assert all("\n" not in p for p in predictions)


# -- Table 4 at the paper scale --------------------------------------------------------------------------------
def test_table_4_scores_squad_by_token_f1_and_the_rest_by_accuracy():
    rows = [{"experiment": "table4", "method": "lora", "seed": seed, "scale": "paper", "params.task_name": task,
             "metrics.accuracy": accuracy, "metrics.token_f1": f1, "metrics.exact_match": em}
            for seed in range(2)
            for task, accuracy, f1, em in (("record", 0.70 + 0.02 * seed, None, None), ("squad", None, 0.80, 0.6))]
    table = lm_table(pd.DataFrame(rows), "table4", PAPER_TABLE_4).set_index("method")
    assert table.loc["LoRA", "record (ours)"] == "71.0 ± 1.4"
    assert table.loc["LoRA", "squad (ours)"] == "80.0 ± 0.0"  # F1, not the exact match beside it
    assert table.loc["LoRA", "ReCoRD (paper)"] == 70.8 and table.loc["LoRA", "SQuAD (paper)"] == 81.9
    assert table.loc["LoRA", "avg (ours)"] == pytest.approx(75.5)


def test_paper_table_4_runs_record_and_squad_with_their_own_lengths():
    import yaml

    from lorarepro.config import experiment_settings, validate_config

    config = validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
    tasks = lm_tasks(experiment_settings(config, "nora", "table4", scale="paper"))
    assert {"record", "squad"} <= set(tasks)
    assert tasks["record"]["kind"] == "cloze" and tasks["record"]["max_length"] == 1024
    assert tasks["squad"]["metrics"][0] == "token_f1" and tasks["squad"]["train_size"] == 1000
    assert tasks["sst2"]["max_length"] == 256  # the scale's size where a task sets none

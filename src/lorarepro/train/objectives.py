"""What a model is trained and scored on, per task kind: the loss of a list of examples, and the
predictions that the task's metrics compare with its references.

- regression: MSE on standardised (or scaled) targets, predictions mapped back to the label scale;
- classification: cross-entropy on the head's logits;
- prompted: each label word's log-likelihood after the prompt, cross-entropy over the label words
  (MeZO's `train_as_classification`); the prediction is the most likely word;
- generation: token cross-entropy on the target continuation; greedy decoding for predictions;
- selection: the head's score of every (sentence, candidate) input, cross-entropy over each example's
  candidates (ConvAI2's next-utterance selection); the prediction is the best-scored candidate;
- cloze: each example's own candidates continue its prompt (ReCoRD); LM loss on the correct one, the
  prediction is the candidate of highest mean token log-likelihood.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lorarepro.adapters.gradient import working_precision
from lorarepro.data.tasks import TaskData, collate, eval_batches

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "input_ids_b", "attention_mask_b")


class Objective:
    """Loss and predictions of one task on one device."""

    def __init__(self, data: TaskData, *, model_kind: str, device: str | torch.device, tokenizer=None):
        self.data, self.model_kind, self.device, self.tokenizer = data, model_kind, torch.device(device), tokenizer

    def batch(self, examples: Sequence[dict[str, Any]], **collate_options) -> dict[str, Any]:
        out = collate(examples, self.data.pad_id, **collate_options)
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in out.items()}

    @staticmethod
    def inputs(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {k: batch[k] for k in MODEL_INPUTS if k in batch}

    def loss(self, model: nn.Module, examples: Sequence[dict[str, Any]]) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, model: nn.Module, examples: Sequence[dict[str, Any]]) -> list:
        raise NotImplementedError

    def reference(self, example: dict[str, Any]):
        return example["label"]


class Regression(Objective):
    def _outputs(self, model, batch) -> torch.Tensor:
        return working_precision(model(**self.inputs(batch)).logits.squeeze(-1))

    def loss(self, model, examples):
        batch = self.batch(examples)
        outputs = self._outputs(model, batch)
        target = (batch["label"].to(outputs.dtype) - self.data.label_mean) / self.data.label_std
        return F.mse_loss(outputs, target)

    def predict(self, model, examples):
        out = self._outputs(model, self.batch(examples)) * self.data.label_std + self.data.label_mean
        return out.tolist()


class Classification(Objective):
    def loss(self, model, examples):
        batch = self.batch(examples)
        return F.cross_entropy(working_precision(model(**self.inputs(batch)).logits), batch["label"])

    def predict(self, model, examples):
        return model(**self.inputs(self.batch(examples))).logits.argmax(-1).tolist()


class Prompted(Objective):
    """Classification by the log-likelihood of each label word (`data.candidates`) after the prompt."""

    def scores(self, model: nn.Module, examples: Sequence[dict[str, Any]]) -> torch.Tensor:
        """log p(label word c | prompt) for every example and candidate: [batch, candidates]."""
        candidates = self.data.candidates
        if self.model_kind == "masked_lm":
            batch = self.batch(examples)
            logits = model(**self.inputs(batch)).logits
            rows, cols = (batch["input_ids"] == self.tokenizer.mask_token_id).nonzero(as_tuple=True)
            logp = working_precision(logits[rows, cols]).log_softmax(-1)
            return logp[:, [c[0] for c in candidates]]
        if self.model_kind == "causal_lm" and all(len(c) == 1 for c in candidates):
            # Left padding puts every prompt's last token at -1, so the vocabulary projection runs
            # on that one position only.
            batch = self.batch(examples, side="left")
            mask = batch["attention_mask"]
            position_ids = (mask.cumsum(-1) - 1).clamp_min(0)
            logits = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=position_ids,
                           logits_to_keep=1).logits[:, -1]
            return working_precision(logits).log_softmax(-1)[:, [c[0] for c in candidates]]
        return self._sequence_scores(model, examples, candidates)

    def _sequence_scores(self, model, examples, candidates) -> torch.Tensor:
        """Multi-token label words (or a seq2seq model): the summed log-probability of each word's tokens."""
        pairs = [(e["input_ids"], c) for e in examples for c in candidates]
        return self.continuation_logprobs(model, pairs)[0].view(len(examples), len(candidates))

    def continuation_logprobs(self, model: nn.Module, pairs: Sequence[tuple[list[int], list[int]]]):
        """log p(continuation | prompt), summed over the continuation's tokens, of every (prompt ids,
        continuation ids) pair in one forward pass; and each continuation's token count."""
        if self.model_kind == "seq2seq_lm":
            expanded = [{"input_ids": prompt, "labels": c} for prompt, c in pairs]
        else:
            expanded = [{"input_ids": prompt + c, "labels": [-100] * len(prompt) + c} for prompt, c in pairs]
        batch = self.batch(expanded)
        logits = model(**self.inputs(batch), **({"labels": batch["labels"]} if self.model_kind == "seq2seq_lm"
                                                 else {})).logits
        logits = working_precision(logits)
        labels = batch["labels"]
        if self.model_kind != "seq2seq_lm":
            logits, labels = logits[:, :-1], labels[:, 1:]
        logp = logits.log_softmax(-1).gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        kept = labels != -100
        return (logp * kept).sum(-1), kept.sum(-1)

    def loss(self, model, examples):
        labels = torch.tensor([e["label"] for e in examples], device=self.device)
        return F.cross_entropy(self.scores(model, examples), labels)

    def predict(self, model, examples):
        return self.scores(model, examples).argmax(-1).tolist()


class Cloze(Prompted):
    """Candidates of each example's own (ReCoRD's entities) as continuations of its prompt, scored as
    MeZO scores them: the prediction is the candidate of highest mean per-token log-probability, and
    training is the language-model loss of the first correct candidate's tokens (`train_as: lm`) or,
    with `train_as: classification`, cross-entropy over the candidates' scores. A forward pass holds at
    most `score_batch` continuations (passages times candidates outgrow memory otherwise)."""

    def __init__(self, *args, train_as: str = "lm", score_batch: int = 16, **kwargs):
        super().__init__(*args, **kwargs)
        if train_as not in ("lm", "classification"):
            raise ValueError(f"unknown train_as {train_as!r}; allowed values are ['lm', 'classification']")
        self.train_as, self.score_batch = train_as, score_batch

    def scores(self, model, examples):
        """Mean log-probability per token of every candidate: [batch, most candidates], -inf where an
        example has fewer."""
        pairs = [(e["input_ids"], c) for e in examples for c in e["choices"]]
        chunks = [self.continuation_logprobs(model, pairs[i: i + self.score_batch])
                  for i in range(0, len(pairs), self.score_batch)]
        mean = torch.cat([total / count for total, count in chunks])
        out = mean.new_full((len(examples), max(len(e["choices"]) for e in examples)), float("-inf"))
        start = 0
        for row, example in enumerate(examples):
            k = len(example["choices"])
            out[row, :k] = mean[start: start + k]
            start += k
        return out

    def loss(self, model, examples):
        if self.train_as == "classification":
            return super().loss(model, examples)
        total, count = self.continuation_logprobs(model, [(e["input_ids"], e["choices"][e["label"]]) for e in examples])
        return -total.sum() / count.sum()

    def reference(self, example):
        return example["answers"]


class Generation(Objective):
    """Token cross-entropy on the target; greedy decoding of at most `max_new_tokens` for predictions."""

    def __init__(self, *args, max_new_tokens: int = 64, stop: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_new_tokens, self.stop = max_new_tokens, stop

    def loss(self, model, examples):
        batch = self.batch(examples)
        return model(**self.inputs(batch), labels=batch["labels"]).loss

    def predict(self, model, examples):
        if self.model_kind == "seq2seq_lm":
            prompts = [{"input_ids": e["input_ids"]} for e in examples]
            batch = self.batch(prompts)
            start = 0
        else:
            prompts = [{"input_ids": e["input_ids"][: e["prompt_length"]]} for e in examples]
            batch = self.batch(prompts, side="left")
            start = batch["input_ids"].shape[1]
        out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             max_new_tokens=self.max_new_tokens, do_sample=False,
                             pad_token_id=self.data.pad_id)
        texts = self.tokenizer.batch_decode(out[:, start:], skip_special_tokens=True)
        if self.stop:  # MeZO ends SQuAD's answers at the first newline
            texts = [text.lstrip().split(self.stop)[0] for text in texts]
        return [text.strip() for text in texts]

    def reference(self, example):
        return example["reference"]


class Selection(Objective):
    """Pick the true candidate: a one-output head scores each `choices` input of an example."""

    def scores(self, model: nn.Module, examples: Sequence[dict[str, Any]]) -> torch.Tensor:
        """The head's score of every candidate of every example: [batch, candidates]."""
        batch = self.batch([choice for e in examples for choice in e["choices"]])
        return working_precision(model(**self.inputs(batch)).logits.squeeze(-1)).view(len(examples), -1)

    def loss(self, model, examples):
        labels = torch.tensor([e["label"] for e in examples], device=self.device)
        return F.cross_entropy(self.scores(model, examples), labels)

    def predict(self, model, examples):
        return self.scores(model, examples).argmax(-1).tolist()


OBJECTIVES = {"regression": Regression, "classification": Classification, "prompted": Prompted,
              "generation": Generation, "selection": Selection, "cloze": Cloze}


def make_objective(data: TaskData, *, model_kind: str, device, tokenizer=None, **options) -> Objective:
    return OBJECTIVES[data.kind](data, model_kind=model_kind, device=device, tokenizer=tokenizer, **options)


@torch.no_grad()
def predict_all(model: nn.Module, objective: Objective, examples: Sequence[dict[str, Any]], batch_size: int):
    """Predictions and references for all `examples`, in their order (batched by length)."""
    was_training = model.training
    model.eval()
    try:
        preds: list = [None] * len(examples)
        for chunk in eval_batches(examples, batch_size):
            for example, pred in zip(chunk, objective.predict(model, chunk), strict=True):
                preds[example["index"]] = pred
    finally:
        model.train(was_training)
    return preds, [objective.reference(e) for e in examples]

"""NTK features of a model whose last block alone is fine-tuned (NTK-LoRA, "Computing G efficiently").

The linearised model is f_lin(X; δ) = f(X) + Σ_l ⟨G_l(X), δ_l⟩ with G_l = ∂f/∂W_l at the pretrained
weights, one G per example and output coordinate j = 1..K. When only the last block is trained:

- the frozen layers below it run once per example, and only their output (the block's input) is kept;
- for a linear layer y_t = W h_t at positions t, G = Σ_t g_t h_tᵀ with g_t = ∂f/∂y_t, so K backward
  passes through the block alone (one per output, for a whole batch at once) give every G, factored;
- each G is kept compressed as U Vᵀ of its numerical rank (a projection read at one position has rank
  1, the value projection rank ≤ #heads);
- on the training set every G_l lies in span(P_l) ⊗ span(Q_l), the joint column and row spaces of all
  training G_l. Gradient descent started at δ = 0 (full fine-tuning) or at B = 0 (LoRA) keeps δ_l in
  P_l(·)Q_lᵀ, and the nuclear-norm prox preserves it, so training runs exactly on Γ = Pᵀ G Q, whose
  size is bounded by N·K·rank instead of m·n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor, nn

from lorarepro.io import atomic_path
from lorarepro.optim.regularized import cross_entropy

# Singular values below RTOL·σ_max are dropped when G and the bases are compressed: far below the
# float32 precision in which the model computes G.
RTOL = 1e-6

BlockInputs = Sequence[tuple[Tensor, ...]]  # the block's cached inputs, one tuple of tensors per batch


@dataclass
class Features:
    """Outputs f(X_i) and factored Jacobians G_l^(j)(X_i) = U V^T of a set of examples.

    factors[l] = (U [N, K, m_l, k_l], V [N, K, n_l, k_l]) as `compress_outer_sums` returns them: V has
    orthonormal columns, U's column norms are the singular values, columns beyond the rank are zero.
    """

    f0: Tensor  # [N, K]
    labels: Tensor  # [N]
    factors: dict[str, tuple[Tensor, Tensor]]

    def outputs(self, deltas: dict[str, tuple[Tensor, Tensor]]) -> Tensor:
        """f_lin for updates given as products δ_l = X_l Y_l (X [..., m, a], Y [..., a, n]); -> [..., N, K]."""
        out = self.f0.to(next(iter(deltas.values()))[0].dtype)
        for name, (x, y) in deltas.items():
            u, v = self.factors[name]
            ux = torch.einsum("ejmk,...ma->...ejka", u.to(x.dtype), x)  # e: example, j: output
            yv = torch.einsum("...ac,ejck->...ejka", y, v.to(y.dtype))
            out = out + (ux * yv).sum((-2, -1))
        return out

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            torch.save({"f0": self.f0, "labels": self.labels, "factors": self.factors}, tmp)

    @classmethod
    def load(cls, path) -> "Features":
        return cls(**torch.load(path, weights_only=True))


@dataclass
class ReducedFeatures:
    """Training-set features in the coordinates where every G lives: G_l = P_l Γ_l Q_l^T."""

    f0: Tensor  # [N, K]
    labels: Tensor  # [N]
    gamma: dict[str, Tensor]  # [N, K, p_l, q_l]
    bases: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)  # (P [m, p], Q [n, q])

    @property
    def names(self) -> list[str]:
        return list(self.gamma)

    def outputs(self, deltas: dict[str, Tensor]) -> Tensor:
        """f_lin for reduced updates M_l = P_l^T δ_l Q_l ([..., p, q]); -> [..., N, K]."""
        n, k = self.f0.shape
        out = self.f0
        for name, m in deltas.items():  # flattened matmuls: much faster than einsum on CPU
            flat = self.gamma[name].reshape(n * k, -1)
            out = out + (m.reshape(*m.shape[:-2], -1) @ flat.T).reshape(*m.shape[:-2], n, k)
        return out

    def pullback(self, d_outputs: Tensor) -> dict[str, Tensor]:
        """The gradient with respect to each M_l of Σ d_outputs ⊙ f_lin (the adjoint of `outputs`)."""
        lead, nk = d_outputs.shape[:-2], d_outputs.shape[-2] * d_outputs.shape[-1]
        return {name: (d_outputs.reshape(*lead, nk) @ g.reshape(nk, -1)).reshape(*lead, *g.shape[-2:])
                for name, g in self.gamma.items()}

    def subset(self, index: Tensor | None) -> "ReducedFeatures":
        if index is None:
            return self
        return ReducedFeatures(self.f0[index], self.labels[index], {k: g[index] for k, g in self.gamma.items()},
                               self.bases)

    def objective(self, deltas: dict[str, Tensor], index: Tensor | None = None):
        """Mean cross-entropy of the linearised model on examples `index` (None: all), its gradient with
        respect to each M_l, and the outputs: an `Objective` of lorarepro.optim.regularized."""
        part = self.subset(index)
        logits = part.outputs(deltas)
        loss, d_logits = cross_entropy(logits, part.labels)
        return loss, part.pullback(d_logits), logits

    def reduce_lora_init(self, name: str, a0: Tensor) -> tuple[Tensor, Tensor]:
        """LoRA's initial A_l [..., r, n] in reduced coordinates, A_l Q_l, and the squared norm of the rest."""
        reduced = a0.to(self.f0.dtype) @ self.bases[name][1]
        return reduced, a0.to(self.f0.dtype).square().sum((-2, -1)) - reduced.square().sum((-2, -1))

    def lift_lora(self, name: str, b: Tensor, a: Tensor, a0: Tensor, shrink: Tensor | float) -> tuple[Tensor, Tensor]:
        """Full-size LoRA factors from reduced ones: B = P B̃ and A = Ã Qᵀ + shrink·(A₀ − A₀QQᵀ), the part of
        the initial A that no gradient reached, shrunk by the accumulated weight decay."""
        p, q = self.bases[name]
        a0 = a0.to(a.dtype)
        idle = a0 - (a0 @ q) @ q.T
        return p @ b, a @ q.T + torch.as_tensor(shrink, dtype=a.dtype)[..., None, None] * idle

    def gram(self) -> Tensor:
        """The empirical NTK, K[(i,j),(i',j')] = Σ_l ⟨G_l^(j)(X_i), G_l^(j')(X_i')⟩, as [N·K, N·K]."""
        flat = torch.cat([g.reshape(g.shape[0] * g.shape[1], -1) for g in self.gamma.values()], dim=1)
        return flat @ flat.T

    def lift(self, name: str, m: Tensor) -> Tensor:
        """δ_l = P_l M_l Q_l^T in the weight's own shape."""
        p, q = self.bases[name]
        return p.to(m.dtype) @ m @ q.to(m.dtype).T

    def to(self, dtype: torch.dtype) -> "ReducedFeatures":
        return ReducedFeatures(self.f0.to(dtype), self.labels, {k: v.to(dtype) for k, v in self.gamma.items()},
                               {k: (p.to(dtype), q.to(dtype)) for k, (p, q) in self.bases.items()})


def orthonormal_basis(columns: Tensor, rtol: float = RTOL) -> Tensor:
    """An orthonormal basis [d, r] of the span of `columns` [d, c], dropping directions below rtol·σ_max."""
    u, s, _ = torch.linalg.svd(columns.double(), full_matrices=False)
    keep = s > rtol * s[0] if len(s) and s[0] > 0 else torch.zeros_like(s, dtype=torch.bool)
    return u[:, keep]


def compress_outer_sums(g: Tensor, h: Tensor, rtol: float = RTOL) -> tuple[Tensor, Tensor]:
    """Factors of G = gᵀh = Σ_t g_t h_tᵀ for g [B, K, T, m], h [B, T, n] -> U [B, K, m, k], V [B, K, n, k].

    With hᵀ = Q R (thin QR), G = (gᵀRᵀ) Qᵀ, and the SVD of the small m×T matrix gᵀRᵀ gives G = (U S)(Q W)ᵀ.
    k is the largest numerical rank in the batch; the columns are ordered by singular value.
    """
    q, r = torch.linalg.qr(h.double().transpose(-1, -2))  # [B, n, T], [B, T, T]
    c = g.double().transpose(-1, -2) @ r.transpose(-1, -2).unsqueeze(1)  # [B, K, m, T]
    u, s, wt = torch.linalg.svd(c, full_matrices=False)
    rank = (s > rtol * s[..., :1].clamp_min(torch.finfo(s.dtype).tiny)).sum(-1)
    k = max(int(rank.max()), 1)
    keep = (torch.arange(s.shape[-1]) < rank.unsqueeze(-1)).to(s.dtype)[..., :k]
    left = u[..., :k] * (s[..., :k] * keep).unsqueeze(-2)
    right = q.unsqueeze(1) @ wt.transpose(-1, -2)[..., :k]
    return left, right


@torch.no_grad()
def block_features(block: nn.Module, targets: Sequence[str], batches: BlockInputs, labels: Tensor,
                   rtol: float = RTOL) -> Features:
    """f(X) and the factored G of the `targets` (names of nn.Linear modules in `block`) for every example.

    `block(*inputs)` maps one batch of cached inputs to the outputs [B, K]; each example's outputs must
    depend on that example alone (true of any per-example model), so one backward pass per output
    coordinate gives the per-example g_t of the whole batch.
    """
    captured: dict[str, tuple[Tensor, Tensor]] = {}

    def capture(name):
        def hook(module, args, output):
            # y + probe with a zero leaf probe: ∂f/∂probe = ∂f/∂y along every path, also through the
            # other targets' outputs further up (a detached y would cut those paths)
            probe = torch.zeros_like(output, requires_grad=True)
            captured[name] = (args[0].detach(), probe)
            return output + probe

        return hook

    handles = [block.get_submodule(name).register_forward_hook(capture(name)) for name in targets]
    f0, parts = [], {name: [] for name in targets}
    try:
        for inputs in batches:
            with torch.enable_grad():
                out = block(*inputs)
                ys = [captured[name][1] for name in targets]
                grads = [torch.autograd.grad(out[:, j].sum(), ys, retain_graph=j + 1 < out.shape[1])
                         for j in range(out.shape[1])]
            f0.append(out.detach())
            for i, name in enumerate(targets):
                g = torch.stack([per_output[i] for per_output in grads], dim=1)  # [B, K, T, m]
                parts[name].append(compress_outer_sums(g, captured[name][0], rtol))
    finally:
        for handle in handles:
            handle.remove()
    return Features(torch.cat(f0).double(), labels, {name: _concat_padded(chunks) for name, chunks in parts.items()})


def _concat_padded(chunks: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Concatenate factor batches of different rank k, padding with zero columns (float32 to save space)."""
    k = max(u.shape[-1] for u, _ in chunks)

    def pad(t: Tensor) -> Tensor:
        return torch.nn.functional.pad(t, (0, k - t.shape[-1])).float()

    return torch.cat([pad(u) for u, _ in chunks]), torch.cat([pad(v) for _, v in chunks])


def reduce(features: Features, rtol: float = RTOL) -> ReducedFeatures:
    """Γ_l = P_lᵀ G_l Q_l on orthonormal bases of the joint column and row spaces of the training G_l."""
    gamma, bases = {}, {}
    for name, (u, v) in features.factors.items():
        u, v = u.double(), v.double()
        scale = u.norm(dim=-2)  # the singular values (V has orthonormal columns)
        p = orthonormal_basis(u.reshape(-1, *u.shape[-2:]).transpose(0, 1).reshape(u.shape[-2], -1), rtol)
        q = orthonormal_basis((v * scale.unsqueeze(-2)).transpose(-2, -1).reshape(-1, v.shape[-2]).T, rtol)
        gamma[name] = (p.T @ u) @ (q.T @ v).transpose(-1, -2)
        bases[name] = (p, q)
    return ReducedFeatures(features.f0.double(), features.labels, gamma, bases)


@torch.no_grad()
def block_outputs(block: nn.Module, batches: BlockInputs, weights: dict[str, Tensor] | None = None) -> Tensor:
    """The (actual, not linearised) block's outputs with some Linear weights replaced; -> [N, K]."""
    return torch.cat([differentiable_block_outputs(block, inputs, weights) for inputs in batches])


def block_objective(block: nn.Module, targets: Sequence[str], inputs: tuple[Tensor | None, ...], labels: Tensor):
    """The actual (not linearised) block as an `Objective` over weight updates δ_l (W_l = W0_l + δ_l):
    mean cross-entropy on examples `index` of one batch of cached inputs, gradients by autograd."""
    base = {name: block.get_submodule(name).weight.detach() for name in targets}

    def objective(deltas: dict[str, Tensor], index: Tensor | None = None):
        part = inputs if index is None else tuple(x if x is None else x[index] for x in inputs)
        wanted = labels if index is None else labels[index]
        leaves = {name: d.detach().to(base[name].dtype).requires_grad_() for name, d in deltas.items()}
        with torch.enable_grad():
            logits = differentiable_block_outputs(block, part, {n: base[n] + leaves[n] for n in leaves})
            loss = torch.nn.functional.cross_entropy(logits, wanted)
            grads = torch.autograd.grad(loss, list(leaves.values()))
        dtype = next(iter(deltas.values())).dtype
        return loss.detach().to(dtype), {n: g.to(dtype) for n, g in zip(leaves, grads)}, logits.detach().to(dtype)

    return objective


def differentiable_block_outputs(block: nn.Module, inputs: tuple[Tensor, ...],
                                 weights: dict[str, Tensor] | None = None) -> Tensor:
    replaced = {f"{name}.weight": w for name, w in (weights or {}).items()}
    return torch.func.functional_call(block, replaced, inputs, strict=False)


# ----------------------------------------------------------------------------------------------
# Prompted language models: the K logits are the label words' logits at the read position (the causal
# LM's last prompt token, the masked LM's mask slot). Cross-entropy over the K label words only sees
# differences of these logits, so it is the same as over the label words' log-likelihoods.
# (W_q, W_v) of one layer, by architecture.
ATTENTION_TARGETS = {"llama": ("self_attn.q_proj", "self_attn.v_proj"),
                     "roberta": ("attention.self.query", "attention.self.value"),
                     "bert": ("attention.self.query", "attention.self.value")}


def lm_layers(model: nn.Module) -> nn.ModuleList:
    return model.model.layers if model.config.model_type == "llama" else model.base_model.encoder.layer


class _LabelWordHead(nn.Module):
    """Last hidden state at the read position -> the label words' logits (the LM head's rows only)."""

    def __init__(self, model: nn.Module, label_ids: Sequence[int]):
        super().__init__()
        ids = list(label_ids)
        if model.config.model_type == "llama":
            self.transform = model.model.norm
            bias = None
        else:  # a BERT-style MLM head: dense -> GELU -> LayerNorm -> decoder
            head = model.lm_head if hasattr(model, "lm_head") else model.cls.predictions
            dense, norm = (head.dense, head.layer_norm) if hasattr(head, "dense") else (head.transform.dense,
                                                                                     head.transform.LayerNorm)
            self.transform = nn.Sequential(dense, nn.GELU(), norm)
            bias = head.decoder.bias if getattr(head.decoder, "bias", None) is not None else head.bias
        self.register_buffer("rows", model.get_output_embeddings().weight[ids].detach().clone())
        self.register_buffer("bias", None if bias is None else bias[ids].detach().clone())

    def forward(self, hidden: Tensor, read_index: Tensor) -> Tensor:
        logits = self.transform(hidden[torch.arange(hidden.shape[0]), read_index]) @ self.rows.T
        return logits if self.bias is None else logits + self.bias


class LastLayerReadout(nn.Module):
    """The last transformer layer of a prompted LM and its label-word head: the trained block when only
    the last layer is fine-tuned. Its inputs are what the frozen layers hand to the last one."""

    def __init__(self, model: nn.Module, label_ids: Sequence[int]):
        super().__init__()
        self.layer = lm_layers(model)[-1]
        self.head = _LabelWordHead(model, label_ids)
        self.targets = tuple(f"layer.{t}" for t in ATTENTION_TARGETS[model.config.model_type])

    def forward(self, hidden: Tensor, read_index: Tensor, args: tuple, kwargs: dict) -> Tensor:
        out = self.layer(hidden, *args, **kwargs)
        return self.head(out[0] if isinstance(out, tuple) else out, read_index)


class PromptReadout(nn.Module):
    """The whole prompted LM, for fine-tuning W_q and W_v of every layer (inputs: ids, mask, read index)."""

    def __init__(self, model: nn.Module, label_ids: Sequence[int]):
        super().__init__()
        self.backbone = model.model if model.config.model_type == "llama" else model.base_model
        self.head = _LabelWordHead(model, label_ids)
        prefix = "layers" if model.config.model_type == "llama" else "encoder.layer"
        self.targets = tuple(f"backbone.{prefix}.{i}.{t}" for i in range(len(lm_layers(model)))
                             for t in ATTENTION_TARGETS[model.config.model_type])

    def forward(self, input_ids: Tensor, attention_mask: Tensor, read_index: Tensor) -> Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.backbone.config.model_type == "llama":  # the backbone already applied the final norm
            return hidden[torch.arange(hidden.shape[0]), read_index] @ self.head.rows.T
        return self.head(hidden, read_index)


def read_positions(input_ids: Tensor, attention_mask: Tensor, mask_token_id: int | None) -> Tensor:
    """Where the label words are read: the mask slot of a masked LM, else the last real token (right padding)."""
    if mask_token_id is not None:
        return (input_ids == mask_token_id).int().argmax(1)
    return attention_mask.sum(1) - 1


class _StopForward(Exception):
    """Raised by a hook once the last layer's inputs are captured: the rest of the forward is not needed."""


@torch.no_grad()
def last_layer_inputs(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, read_index: Tensor,
                      batch_size: int) -> list[tuple]:
    """Run the frozen layers once and keep, per batch, what the last layer receives (its hidden states and
    the masks / position embeddings the model passes along), with the read positions.

    Sequences are right-padded; each batch is trimmed to its longest sequence.
    """
    batches = []
    for start in range(0, len(input_ids), batch_size):
        rows = slice(start, start + batch_size)
        length = int(attention_mask[rows].sum(1).max())
        args, kwargs = layer_call(model.base_model, lm_layers(model)[-1], input_ids=input_ids[rows, :length],
                                  attention_mask=attention_mask[rows, :length])
        hidden = args[0] if args else kwargs.pop("hidden_states")
        keep = {k: v for k, v in kwargs.items() if torch.is_tensor(v) or isinstance(v, tuple)}
        batches.append((hidden, read_index[rows], tuple(args[1:]), keep))
    return batches


@torch.no_grad()
def layer_call(model: nn.Module, layer: nn.Module, **inputs) -> tuple[tuple, dict]:
    """The positional and keyword arguments `layer` receives when `model(**inputs)` runs; the forward
    stops there, so the layers above it never run."""
    captured = {}

    def hook(module, args, kwargs):
        captured["args"], captured["kwargs"] = args, kwargs
        raise _StopForward

    handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model(**inputs)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured["args"], captured["kwargs"]


# ----------------------------------------------------------------------------------------------
# Hub classifiers (the image and speech tasks of Figure 3 / Table 4): a ViT reads the CLS token of its
# final norm; wav2vec2 projects every frame and mean-pools (no attention mask: the base model's feature
# extractor pads with zeros and pools over the padding, as Wav2Vec2ForSequenceClassification does).
CLASSIFIER_TARGETS = {"vit": ("attention.q_proj", "attention.v_proj"),
                      "wav2vec2": ("attention.q_proj", "attention.v_proj")}


class ClassifierReadout(nn.Module):
    """The last encoder layer of a ViTForImageClassification / Wav2Vec2ForSequenceClassification and
    everything above it: the trained block when only the last layer is fine-tuned. Its input is the last
    layer's input (`classifier_layer_inputs`); no attention mask is involved in either model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        kind = model.config.model_type
        if kind == "vit":
            self.layer, self.norm = model.vit.layers[-1], model.vit.layernorm
            self.projector = nn.Identity()
        elif kind == "wav2vec2":
            if model.config.use_weighted_layer_sum:
                raise ValueError("a weighted sum of layers feeds the head: the last layer is not the only trained path")
            encoder = model.wav2vec2.encoder
            # the stable-layer-norm variant (large models) normalises after the last layer, the base model before
            self.layer = encoder.layers[-1]
            self.norm = encoder.layer_norm if model.config.do_stable_layer_norm else nn.Identity()
            self.projector = model.projector
        else:
            raise ValueError(f"no classifier readout for model type {kind!r}; known: {sorted(CLASSIFIER_TARGETS)}")
        self.pool = "cls" if kind == "vit" else "mean"
        self.head = model.classifier
        self.targets = tuple(f"layer.{t}" for t in CLASSIFIER_TARGETS[kind])

    def forward(self, hidden: Tensor) -> Tensor:
        out = self.layer(hidden)
        out = self.projector(self.norm(out[0] if isinstance(out, tuple) else out))
        return self.head(out[:, 0] if self.pool == "cls" else out.mean(1))


def classifier_layer_inputs(model: nn.Module, readout: ClassifierReadout, batches: Sequence[dict]) -> Tensor:
    """Run the frozen layers once: the last layer's input for every batch of model inputs, concatenated."""
    hidden = []
    for inputs in batches:
        args, kwargs = layer_call(model, readout.layer, **inputs)
        if any(torch.is_tensor(v) for v in (*args[1:], *kwargs.values()) if v is not None):
            raise ValueError("the last layer receives a mask; ClassifierReadout would drop it")
        hidden.append(args[0] if args else kwargs["hidden_states"])
    return torch.cat(hidden)

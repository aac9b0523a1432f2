"""LoRA initialisations as functions of one weight matrix and its gradient.

Orientation (PEFT / torch): a weight is W ∈ R^{out×in}, the adapter is ΔW = B·A with
lora_B = B ∈ R^{out×r} and lora_A = A ∈ R^{r×in}. Papers written for f(x) = xᵀW (W ∈ R^{d×k},
d = in, k = out) have A_paper = Aᵀ (input side) and B_paper = Bᵀ (output side), and their gradient
is the transpose of ours. Every function here takes and returns the torch orientation, so the same
code initialises a synthetic task and a PEFT layer. Leading batch dimensions are allowed throughout.

`neg_grad` is −∇_W L at the pretrained weight (the descent direction); `grad` is +∇_W L.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LowRankSVD:
    """Top singular triplets of a matrix: U (…×out×q), S (…×q, descending), Vh (…×q×in)."""

    U: torch.Tensor
    S: torch.Tensor
    Vh: torch.Tensor


def top_svd(matrix: torch.Tensor, rank: int, *, method: str = "full", oversample: int = 512,
            niter: int = 16, generator_seed: int | None = None) -> LowRankSVD:
    """The top-`rank` singular triplets, by a full SVD or torch.svd_lowrank (the LoRA-One code uses
    svd_lowrank with q=512, niter=16; with q near the full dimension a full SVD is faster and exact)."""
    if method == "full" or oversample >= min(matrix.shape[-2:]):
        U, S, Vh = torch.linalg.svd(matrix, full_matrices=False)
        return _pad(LowRankSVD(U[..., :rank], S[..., :rank], Vh[..., :rank, :]), rank)
    if method != "lowrank":
        raise ValueError(f"unknown SVD method {method!r}; allowed: 'full', 'lowrank'")
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    U, S, V = torch.svd_lowrank(matrix, q=oversample, niter=niter)
    return _pad(LowRankSVD(U[..., :rank], S[..., :rank], V[..., :rank].transpose(-2, -1)), rank)


def _pad(svd: LowRankSVD, rank: int) -> LowRankSVD:
    """An adapter rank above the matrix's smaller side gets zero singular triplets for the excess."""
    missing = rank - svd.S.shape[-1]
    if missing <= 0:
        return svd
    pad = torch.nn.functional.pad
    return LowRankSVD(pad(svd.U, (0, missing)), pad(svd.S, (0, missing)), pad(svd.Vh, (0, 0, 0, missing)))


def gaussian_init(out_features: int, in_features: int, rank: int, std: float, *,
                  generator: torch.Generator | None = None, dtype=torch.float64, batch: tuple[int, ...] = ()):
    """LoRA-init of the theory: A ~ N(0, std²) entrywise, B = 0, so ΔW = 0 at the start."""
    A = torch.randn(*batch, rank, in_features, generator=generator, dtype=dtype) * std
    B = torch.zeros(*batch, out_features, rank, dtype=dtype)
    return A, B


def spectral_init(neg_grad: torch.Tensor, rank: int, *, gamma: float = 1.0, svd: LowRankSVD | None = None):
    """Spectral-init (LoRA-One App. C.2): B = √γ·U_r S_r^{1/2}, A = √γ·S_r^{1/2} V_rᵀ of −∇W.

    Then B·A = γ·P_r(−∇W): with γ = 1 and r ≥ rank(−∇W) the adapter equals the one-step gradient.
    """
    svd = svd or top_svd(neg_grad, rank)
    root = torch.sqrt(svd.S * gamma)
    B = svd.U * root.unsqueeze(-2)
    A = root.unsqueeze(-1) * svd.Vh
    return A, B


def lora_one_init(neg_grad: torch.Tensor, rank: int, *, scale: float, svd_method: str = "lowrank",
                  oversample: int = 512, niter: int = 16):
    """LoRA-One (Algorithm 1): spectral init of −∇W with S normalised by S[0] and γ = 1/scale.

    lora_B = U_r·diag(√S_r)/√S₀/√s and lora_A = diag(√S_r)·V_rᵀ/√S₀/√s, exactly as the authors'
    `reinit_lora_modules`; the base weight is left unchanged, so the model's function changes by
    (scaling/s)·P_r(−∇W)/σ₁ at step 0.
    """
    svd = top_svd(neg_grad, rank, method=svd_method, oversample=oversample, niter=niter)
    normalised = LowRankSVD(svd.U, svd.S / svd.S[..., :1], svd.Vh)
    return spectral_init(neg_grad, rank, gamma=1.0 / scale, svd=normalised)


def lora_ga_init(grad: torch.Tensor, rank: int, *, gamma: float, svd_method: str = "full",
                 oversample: int = 512, niter: int = 16):
    """LoRA-GA in the paper's form (LoRA-One eq. 91 / the LoRA-GA code), from +∇W:
    A = V_{1..r}ᵀ (input side), B = U_{r+1..2r} (output side), both × out^{1/4}/√γ.

    Returns (A, B). The caller subtracts scaling·B·A from the base weight, so the model's function
    is unchanged at step 0 (PEFT's `lora_ga` differs: it multiplies by singular values).
    """
    out_features = grad.shape[-2]
    if 2 * rank > min(grad.shape[-2:]):
        raise ValueError(f"LoRA-GA needs 2r = {2 * rank} singular directions; the matrix has {min(grad.shape[-2:])}")
    svd = top_svd(grad, 2 * rank, method=svd_method, oversample=oversample, niter=niter)
    factor = out_features ** 0.25 / gamma ** 0.5
    A = svd.Vh[..., :rank, :] * factor
    B = svd.U[..., :, rank:2 * rank] * factor
    return A, B


def lora_sb_init(neg_grad: torch.Tensor, rank: int, *, scale: float = 1.0):
    """LoRA-SB / LoRA-XS: ΔW = U_r·R·V_rᵀ with the top-r singular vectors of −∇W frozen and only
    the r×r matrix R = diag(S_r)/scale trained. Returns (U_r, R, V_rᵀ)."""
    svd = top_svd(neg_grad, rank)
    return svd.U, torch.diag_embed(svd.S / scale), svd.Vh

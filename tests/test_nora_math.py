"""The math of the NoRA matrix-factorization experiments, pinned on small float64 instances: the exact
recursions of the proofs, the residual-space invariant, the one-step identities of Theorems 5-6,
gradients against autograd, the factored errors against dense ones, and the exact span reduction."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from lorarepro.adapters.nystrom import nora_lora_init, nystrom_init, perturbed_nystrom_init, small_init
from lorarepro.optim.factorization import STEPS, altgd, asym_gd, gd, run, scaled_gd
from lorarepro.problems.matrix_factorization import (asymmetric_target, batch_generators, gradient, loss,
                                                     optimality_error, reduce_to_span, residual_norm, spectrum,
                                                     symmetric_target, weak_optimality_error)

M, N, R = 40, 30, 5
VALUES = np.array([1.0, 0.8, 0.5, 0.2, 0.1])          # κ = 10
UP_VALUES = np.array([1.0, 0.8, 0.5, 0.2, 0.1, 0.05, 0.02])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These are many tiny products: threads only add contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gens(stream, seeds=(0, 1, 2)):
    return batch_generators(seeds, stream)


@pytest.fixture
def sym():
    return symmetric_target(VALUES, M, gens("target"))


def random_factor(rows, cols=R, stream="x"):
    return torch.randn(3, rows, cols, dtype=torch.float64, generator=torch.Generator().manual_seed(zlib.crc32(stream.encode())))


# ----------------------------------------------------------------------------------------------
# Spectra and targets
def test_spectra_match_the_paper():
    ep = spectrum("ep")
    assert len(ep) == 20 and ep[0] == 1.0 and ep[18] == pytest.approx(0.82) and ep[-1] == 0.01
    assert ep[0] / ep[-1] == pytest.approx(100.0)
    up = spectrum("up", "r_a_40")
    assert len(up) == 40 and up[36] == pytest.approx(0.44) and list(up[-3:]) == [0.05, 0.025, 0.01]
    listed = spectrum("up", "listed_60")
    assert len(listed) == 60 and listed[56] == pytest.approx(0.44) and np.all(np.diff(listed) < 0)


def test_factored_target_matches_its_dense_form(sym):
    dense = sym.dense()
    q = sym.left
    assert torch.allclose(q.mT @ q, torch.eye(len(VALUES), dtype=torch.float64).expand(3, -1, -1), atol=1e-13)
    assert torch.allclose(dense, dense.mT, atol=1e-14)
    assert torch.linalg.eigvalsh(dense).min() > -1e-12
    x = random_factor(M)
    assert torch.allclose(sym @ x, dense @ x, atol=1e-13)
    assert torch.allclose(sym.apply_scaled(x), dense @ x @ torch.linalg.inv(x.mT @ x), atol=1e-11)


def test_a_seed_draws_the_same_whatever_shares_its_batch():
    alone = symmetric_target(VALUES, M, gens("target", seeds=(2,)))
    batch = symmetric_target(VALUES, M, gens("target", seeds=(0, 1, 2)))
    assert torch.equal(alone.left[0], batch.left[2])
    assert gens("target", (0,))[0].initial_seed() != gens("init", (0,))[0].initial_seed()


# ----------------------------------------------------------------------------------------------
# Errors and gradients in factored form
def test_optimality_and_weak_errors_match_dense_computations(sym):
    x = random_factor(M)
    dense = sym.dense()
    assert torch.allclose(optimality_error(sym, x), torch.linalg.matrix_norm(x @ x.mT - dense), rtol=1e-12)
    weak = x.mT @ torch.linalg.pinv(dense, hermitian=True) @ x - torch.eye(R, dtype=torch.float64)
    assert torch.allclose(weak_optimality_error(sym, x), torch.linalg.matrix_norm(weak), rtol=1e-8)
    asym = asymmetric_target(UP_VALUES, M, N, gens("target"))
    x, y = random_factor(M, stream="x"), random_factor(N, stream="y")
    dense = asym.dense()
    assert torch.allclose(optimality_error(asym, x, y), torch.linalg.matrix_norm(x @ y.mT - dense), rtol=1e-12)
    weak = y.mT @ torch.linalg.pinv(dense) @ x - torch.eye(R, dtype=torch.float64)
    assert torch.allclose(weak_optimality_error(asym, x, y), torch.linalg.matrix_norm(weak), rtol=1e-8)
    assert torch.allclose(asym.tail_norm(R), torch.linalg.vector_norm(torch.as_tensor(UP_VALUES[R:])).expand(3))


def test_gradients_match_autograd(sym):
    x = random_factor(M).requires_grad_()
    (0.25 * torch.linalg.matrix_norm(x @ x.mT - sym.dense()) ** 2).sum().backward()
    assert torch.allclose(gradient(sym, x.detach()), x.grad, rtol=1e-10, atol=1e-12)
    x0 = x.detach().clone().requires_grad_()
    loss(sym, x0).sum().backward()
    assert torch.allclose(x0.grad, x.grad, rtol=1e-8, atol=1e-10)

    asym = asymmetric_target(UP_VALUES, M, N, gens("target"))
    x, y = random_factor(M, stream="x").requires_grad_(), random_factor(N, stream="y").requires_grad_()
    (0.5 * torch.linalg.matrix_norm(x @ y.mT - asym.dense()) ** 2).sum().backward()
    gx, gy = gradient(asym, x.detach(), y.detach())
    assert torch.allclose(gx, x.grad, rtol=1e-10, atol=1e-12) and torch.allclose(gy, y.grad, rtol=1e-10, atol=1e-12)


def test_steps_are_the_papers_updates(sym):
    x, eta = random_factor(M), 0.3
    dense = sym.dense()
    residual = x @ x.mT - dense
    assert torch.allclose(gd(sym, x, eta), x - eta * residual @ x, atol=1e-12)
    assert torch.allclose(scaled_gd(sym, x, eta), x - eta * residual @ x @ torch.linalg.inv(x.mT @ x), atol=1e-10)
    asym = asymmetric_target(VALUES, M, N, gens("target"))
    x, y = random_factor(M, stream="x"), random_factor(N, stream="y")
    res = x @ y.mT - asym.dense()
    gx, gy = asym_gd(asym, x, y, eta)
    assert torch.allclose(gx, x - eta * res @ y, atol=1e-12) and torch.allclose(gy, y - eta * res.mT @ x, atol=1e-12)
    ax, ay = altgd(asym, x, y, eta)
    assert torch.allclose(ax, gx, atol=1e-12)
    assert torch.allclose(ay, y - eta * (ax @ y.mT - asym.dense()).mT @ ax, atol=1e-12)
    sx, sy = STEPS["asymmetric", "scaledgd"](asym, (x, y), eta, 0)
    assert torch.allclose(sx, x - eta * res @ y @ torch.linalg.inv(y.mT @ y), atol=1e-10)
    assert torch.allclose(sy, y - eta * res.mT @ x @ torch.linalg.inv(x.mT @ x), atol=1e-10)


# ----------------------------------------------------------------------------------------------
# The exact recursions of the symmetric EP proof (X_t = QΦ_t, B_t = Φ_tΦ_tᵀ)
@pytest.mark.parametrize("eta", [0.1, 0.5, 0.9])
def test_ep_recursion_holds_exactly(sym, eta):
    sigma = torch.diag_embed(sym.values)
    x = nystrom_init(sym, R, 1.0, gens("init"))
    for _ in range(15):
        phi = sym.left.mT @ x
        b = phi @ phi.mT
        x = scaled_gd(sym, x, eta)
        phi_next = sym.left.mT @ x
        predicted = (1 - eta) ** 2 * b + 2 * eta * (1 - eta) * sigma + eta**2 * sigma @ torch.linalg.solve(b, sigma)
        assert torch.linalg.matrix_norm(phi_next @ phi_next.mT - predicted).max() < 1e-10


def test_half_step_recursion_is_quadratic(sym):
    """η = 0.5, C_t = Σ⁻¹B_t: C_{t+1} − I = ¼C_t⁻¹(C_t − I)², so ‖XXᵀ − A‖_F falls quadratically."""
    eye = torch.eye(R, dtype=torch.float64)
    x = nystrom_init(sym, R, 1.0, gens("init"))
    errors = []
    for _ in range(12):
        phi = sym.left.mT @ x
        c = (phi @ phi.mT) / sym.values.unsqueeze(-1)
        x = scaled_gd(sym, x, 0.5)
        phi = sym.left.mT @ x
        c_next = (phi @ phi.mT) / sym.values.unsqueeze(-1)
        assert torch.linalg.matrix_norm(c_next - eye - 0.25 * torch.linalg.solve(c, (c - eye) @ (c - eye))).max() < 1e-9
        errors.append(optimality_error(sym, x))
    errors = torch.stack(errors)
    kappa = VALUES[0] / VALUES[-1]
    close = (errors[:-1] < 1e-2) & (errors[:-1] > 1e-6)
    assert close.any() and (errors[1:][close] <= 0.75 * kappa**2 * errors[:-1][close] ** 2).all()


def test_nystrom_residual_stays_at_roundoff_small_init_halves(sym):
    x = nystrom_init(sym, R, 1.0, gens("init"))
    z = small_init((M, R), 1e-3, gens("init"))
    r0 = residual_norm(sym.left, z)
    for t in range(1, 30):
        x, z = scaled_gd(sym, x, 0.5), scaled_gd(sym, z, 0.5)
        assert (residual_norm(sym.left, x) / torch.linalg.matrix_norm(x)).max() < 1e-13
        if t < 20:  # ‖(I − QQᵀ)X_t‖ = (1 − η)^t ‖(I − QQᵀ)X_0‖ exactly, until round-off
            assert torch.allclose(residual_norm(sym.left, z), 0.5**t * r0, rtol=1e-6)


def test_perturbed_sketch_adds_the_noise_to_the_same_sketch(sym):
    pure = nystrom_init(sym, R, 1.0, gens("init"))
    perturbed = perturbed_nystrom_init(sym, R, 1.0, 1e-6, gens("init"))
    assert 0 < torch.linalg.matrix_norm(perturbed - pure).max() < 1e-6 * np.sqrt(M * R) * 2


# ----------------------------------------------------------------------------------------------
# Asymmetric Nyström ScaledGD (eq. 5): one step
@pytest.mark.parametrize("values", [VALUES, UP_VALUES], ids=["EP", "UP"])
@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_asymmetric_first_step(values, eta):
    asym = asymmetric_target(values, M, N, gens("target"))
    x0 = nystrom_init(asym, R, 1.0, gens("init"))
    x1, y1 = STEPS["asymmetric", "scaledgd_modified"](asym, (x0, torch.zeros(3, N, R, dtype=torch.float64)), eta, 0)
    assert torch.equal(x1, x0)
    inner = y1.mT @ torch.linalg.pinv(asym.dense()) @ x1
    assert torch.linalg.matrix_norm(inner - eta * torch.eye(R, dtype=torch.float64)).max() < 1e-10
    if len(values) == R:  # EP: X₁Y₁ᵀ = ηA (Φ₁Ψ₁ᵀ = ηΣ)
        assert (torch.linalg.matrix_norm(x1 @ y1.mT - eta * asym.dense()) / asym.frobenius_norm()).max() < 1e-12


# ----------------------------------------------------------------------------------------------
# Exact reduction to the span of col(A) and the initial residual
def _trajectory(step, target, factors, eta, iters):
    errors = []
    run(step, target, factors, eta, iters, range(iters + 1),
        lambda t, f: errors.append(optimality_error(target, *f)))
    return torch.stack(errors)


@pytest.mark.parametrize("algorithm,eta", [("gd", 0.05), ("scaledgd", 0.5)])
def test_reduced_symmetric_run_equals_the_full_one(sym, algorithm, eta):
    x0 = small_init((M, R), 1e-2, gens("init"))
    small, x_red, _ = reduce_to_span(sym, x0)
    assert x_red.shape[-2] == len(VALUES) + R
    full = _trajectory(STEPS["symmetric", algorithm], sym, (x0,), eta, 100)
    reduced = _trajectory(STEPS["symmetric", algorithm], small, (x_red,), eta, 100)
    assert torch.allclose(full, reduced, rtol=1e-8, atol=1e-13)


@pytest.mark.parametrize("algorithm", ["gd", "altgd"])
def test_reduced_asymmetric_run_equals_the_full_one(algorithm):
    asym = asymmetric_target(UP_VALUES, M, N, gens("target"))
    x0, y0 = small_init((M, R), 1e-2, gens("init")), small_init((N, R), 1e-2, gens("init2"))
    small, x_red, y_red = reduce_to_span(asym, x0, y0)
    full = _trajectory(STEPS["asymmetric", algorithm], asym, (x0, y0), 0.05, 100)
    reduced = _trajectory(STEPS["asymmetric", algorithm], small, (x_red, y_red), 0.05, 100)
    assert torch.allclose(full, reduced, rtol=1e-8, atol=1e-13)
    assert torch.allclose(weak_optimality_error(asym, x0, y0), weak_optimality_error(small, x_red, y_red), rtol=1e-10)


# ----------------------------------------------------------------------------------------------
# NoRA for a LoRA layer
def test_nora_lora_init_keeps_the_model_and_sketches_the_row_space():
    w = torch.randn(24, 16, generator=torch.Generator().manual_seed(0)) @ torch.diag(torch.linspace(1, 0.1, 16))
    w[:, -4:] = 0.0  # a weight whose row space misses the last 4 input coordinates
    lora_a, lora_b = nora_lora_init(w, rank=4, xi=0.1, scaling=2.0, generator=torch.Generator().manual_seed(1))
    assert lora_a.shape == (4, 16) and lora_b.shape == (24, 4)
    assert torch.count_nonzero(lora_b) == 0 and torch.count_nonzero(2.0 * lora_b @ lora_a) == 0
    assert torch.count_nonzero(lora_a[:, -4:]) == 0 and torch.linalg.matrix_rank(lora_a) == 4
    omega = 0.1 * torch.randn(24, 4, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(lora_a, omega.T @ w / 2.0, atol=1e-6)
    half, _ = nora_lora_init(w.half(), rank=4, xi=0.1, scaling=2.0, generator=torch.Generator().manual_seed(1))
    assert half.dtype == torch.float32

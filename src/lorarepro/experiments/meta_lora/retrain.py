"""Retraining of one method at every point of a Meta-LoRA model's grid, trials batched as a leading dimension.

    python -m lorarepro.experiments.meta_lora.retrain --params '<json>' --model linear --method lora_ml \
        --records results/meta_lora/linear_retrain/lora_ml/<point>/seed=<s>/metrics.json …

SR fits one model to the T tasks pooled (eq. 1); LoRA-ML fits the shared base jointly with one
adapter per task (eq. 6): symmetric U_tU_tᵀ trained by alternating GD in the linear model (objective
(14), as the authors' code), asymmetric zero-initialised Q_tV_tᵀ trained by AdamW in the shallow net.
The retrained bases of a point's trials go to `bases.pt` beside its seed folders, for the fine-tuning
job; each trial's record holds the training loss and the distance ‖Â − A*‖²_F (and, for linear
LoRA-ML, Σ_t‖U_tU_tᵀ − U_t*U_t*ᵀ‖²_F). The shallow net trains on the configured device.
"""

from __future__ import annotations


import torch

from lorarepro.config import seeds_of
from lorarepro.device import resolve_device
from lorarepro.experiments.meta_lora import job
from lorarepro.experiments.meta_lora.grid import PAPER, bases_file, parse_setting, resolve, results_root, retrain_points
from lorarepro.experiments.meta_lora.instance import default_linear_init, truth as make_truth
from lorarepro.io import atomic_path
from lorarepro.optim import meta_retraining as mr
from lorarepro.problems import multitask as mt
from lorarepro.records import Stopwatch, run_dir, write_run


def retrain_linear(method: str, data: mt.TaskData, seeds, s: dict) -> tuple[dict, dict]:
    moments = mr.Moments.of(data.X, data.Y)
    r = s["retrain"]
    if method == "sr":
        A = mr.sr_linear(moments, r["steps"], r["lr_A"])
        return {"A": A}, {"train_loss": 0.5 * _task_sq_error(mt.predict(A[:, None], data.X), data.Y)}
    T, d = data.X.shape[1], data.X.shape[-1]
    U0 = r["init_std"] * mt.randn(seeds, mt.RETRAIN_INIT, (T, d, s["k"]), dtype=data.X.dtype)
    A, U = mr.lora_ml_linear(moments, U0, r["steps"], r["inner_steps"], r["lr_A"], r["lr_U"])
    W = A[:, None] + mt.gram(U)
    return {"A": A, "U": U}, {"train_loss": 0.5 * _task_sq_error(mt.predict(W, data.X), data.Y)}


def retrain_shallow(method: str, data: mt.TaskData, seeds, s: dict, device: str) -> tuple[dict, dict]:
    """AdamW on `device` (the trials' draws are made on the CPU, so they do not depend on it)."""
    T, d, dtype = data.X.shape[1], data.X.shape[-1], data.X.dtype
    data = data.to(device)
    r = s["retrain"]
    opt = mr.AdamW(lr=r["lr"], weight_decay=r["weight_decay"])
    # PyTorch's default init of Linear(d, d) and Linear(d, 1), the same start for both methods
    W0 = default_linear_init(seeds, (d, d), mt.RETRAIN_INIT, 0, dtype=dtype).to(device)
    c0 = default_linear_init(seeds, (d,), mt.RETRAIN_INIT, 1, dtype=dtype).to(device)
    if method == "sr":
        W, c = mr.sr_shallow(data, W0, c0, r["steps"], opt)
        task_W = W[:, None]
    else:
        # per task: down Linear(d, k) at the default init, up Linear(k, d) at zero (the authors' code)
        V0 = default_linear_init(seeds, (T, s["k"], d), mt.RETRAIN_INIT, 2, dtype=dtype).transpose(-2, -1)
        V0 = V0.to(device)
        W, c, Q, V = mr.lora_ml_shallow(data, W0, c0, torch.zeros_like(V0), V0, r["steps"], opt)
        task_W = W[:, None] + Q @ V.transpose(-2, -1)
    loss = _task_sq_error(mt.predict(task_W, data.X, c), data.Y)
    return {"A": W.cpu(), "c": c.cpu()}, {"train_loss": loss.cpu()}


def _task_sq_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per trial: the mean over tasks of (1/N) Σ_j ‖pred_j − target_j‖², (B,)."""
    return (pred - target).pow(2).sum(-1).mean(-1).mean(-1)


def retrain_point(model: str, method: str, setting: str, s: dict, seeds: list[int], device: str) -> tuple[dict, dict]:
    """Retrain every trial of one point; returns the bases (for fine-tuning) and per-trial metrics."""
    p = parse_setting(setting)
    truth = make_truth(s, model, p, seeds)
    data = mt.sample_retraining_data(truth, seeds, p["N"], s["sigma_x"], s["sigma_eps"])
    if model == "linear":
        bases, per_trial = retrain_linear(method, data, seeds, s | p)
    else:
        bases, per_trial = retrain_shallow(method, data, seeds, s | p, device)
    per_trial["base_error"] = (bases["A"] - truth.A_star).pow(2).sum((-2, -1))
    if "U" in bases:
        per_trial["adapter_error"] = (mt.gram(bases["U"]) - mt.gram(truth.U_star[:, :-1])).pow(2).sum((-3, -2, -1))
    return bases, per_trial


def main(argv=None) -> None:
    parser = job.parser(__doc__, records="metrics.json of every point and seed")
    parser.add_argument("--model", choices=["linear", "shallow"], required=True)
    parser.add_argument("--method", choices=["sr", "lora_ml"], required=True)
    args = job.parse(parser, argv)

    params = args.params
    s = resolve(params)
    seeds, points = seeds_of(s), retrain_points(params)
    # The linear model's d × d steps are fastest on the CPU; the shallow net batches N samples per task.
    device = str(resolve_device(params["device"])) if args.model == "shallow" else "cpu"
    experiment = f"{args.model}_retrain"
    root = results_root(args.records[0])
    expected = {str(run_dir(root, PAPER, experiment, args.method, point, seed) / "metrics.json")
                for point in points for seed in seeds}
    job.check_records(args, expected, f"the grid of {len(points)} points x {len(seeds)} seeds")
    recorded = {k: v for k, v in s.items() if k not in ("seeds", "resources", "sweeps", "base", "scale", "device",
                                                         "finetune", "retrain", "protocol")}
    recorded |= {f"retrain_{k}": v for k, v in s["retrain"].items()} | {"protocol": s.get("protocol", "paper")}
    for point in points:
        with Stopwatch(device) as sw:
            bases, per_trial = retrain_point(args.model, args.method, point, s, seeds, device)
        runtime = sw.runtime(seeds_in_job=len(seeds))
        with atomic_path(bases_file(root, args.model, args.method, point)) as tmp:
            torch.save({"seeds": seeds, "setting": point, **bases}, tmp)
        for i, seed in enumerate(seeds):
            metrics = {name: float(values[i]) for name, values in per_trial.items()}
            write_run(run_dir(root, PAPER, experiment, args.method, point, seed), paper=PAPER, experiment=experiment,
                      method=args.method, seed=seed, scale=params["scale"],
                      params=recorded | parse_setting(point) | {"setting": point}, metrics=metrics, runtime=runtime)
        print(f"{args.model}/{args.method}/{point}: {len(seeds)} trials in {runtime['wall_s']:.1f}s; "
              f"‖Â − A*‖² median {per_trial['base_error'].median():.3g}", flush=True)


if __name__ == "__main__":
    main()

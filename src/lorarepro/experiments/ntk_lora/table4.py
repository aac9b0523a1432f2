"""Table 4: test accuracy of actual LoRA (the ViT's real last block with W + BA) vs linearised LoRA
(f0 + ⟨G, BA⟩), same init, same data, same optimiser, for the image or the speech task.

    python -m lorarepro.experiments.ntk_lora.table4 --params '{...}' --modality image \
        --data resources/data/mnist5k --model model.pt --train train.pt --test test.pt --root results
"""

from __future__ import annotations

import torch

from lorarepro.config import format_setting
from lorarepro.experiments.cli import parse_paths
from lorarepro.experiments.ntk_lora.runs import Tracer, lora_init
from lorarepro.experiments.ntk_lora.vision import finetune_problem
from lorarepro.models.ntk_features import Features, block_objective, block_outputs, reduce
from lorarepro.optim.regularized import LoraState, lora_gd
from lorarepro.records import Stopwatch, first_nonfinite, run_dir, write_run

PAPER, EXPERIMENT = "ntk_lora", "table4"


def main(argv=None) -> None:
    args = parse_paths(__doc__, "--modality", "--data", "--model", "--train", "--test", "--root", argv=argv)
    params = args.params
    torch.set_num_threads(params.get("threads", 1))
    modality = params["modalities"][args.modality]
    rank, seeds = params["rank"], params["seed_list"]
    lr, weight_decay = params["lr"], params["weight_decay"]
    epochs, batch_size, mode, every = params["epochs"], params["batch_size"], params["mode"], params["eval_every"]

    problem = finetune_problem(modality, args.data, args.model, per_class=params["per_class"],
                               data_seed=params["data_seed"], head_seed=params["head_seed"],
                               test_size=params["test_size"], device=params.get("device", "cpu"))
    train, test = Features.load(args.train), Features.load(args.test)
    reduced = reduce(train)
    n = len(train.labels)
    shapes = {name: (u.shape[-2], v.shape[-2]) for name, (u, v) in train.factors.items()}
    common = {"task": args.modality, "r": rank, "lr": lr, "weight_decay": weight_decay, "epochs": epochs,
              "batch_size": batch_size, "mode": mode, "n_samples": n, "classes": train.f0.shape[1]}

    def write(method, seed, tracer, run, watch):
        trace = tracer.frame(run)
        out = run_dir(args.root, PAPER, EXPERIMENT, method, format_setting({"task": args.modality, "r": rank}),
                      seed)
        write_run(out, paper=PAPER, experiment=EXPERIMENT, method=method, seed=seed, scale=params["scale"],
                  params=common, trace=trace, runtime=watch.runtime(seeds_in_job=len(seeds)),
                  metrics={"final_test_acc": float(trace["test_acc"].dropna().iloc[-1]),
                           "final_train_acc": float(trace["train_acc"].iloc[-1]),
                           "final_objective": float(trace["objective"].iloc[-1])},
                  diverged_at=first_nonfinite(trace["objective"].to_numpy(), trace["step"].to_numpy()))

    # Linearised LoRA: all seeds at once, on the reduced NTK features.
    with Stopwatch() as watch:
        state, a0 = lora_init(reduced, rank, seeds, shapes)
        idle0 = state.a_idle_sq.clone()

        def lifted(s):
            shrink = torch.sqrt(s.a_idle_sq / idle0.clamp_min(1e-300))
            return {name: reduced.lift_lora(name, s.b[name], s.a[name], a0[name], shrink) for name in s.b}

        tracer = Tracer(reduced.objective, reduced.labels, weight_decay, lambda s: test.outputs(lifted(s)),
                        test.labels, every)
        tracer(0, state)
        lora_gd(reduced.objective, state, lr=lr, weight_decay=weight_decay, epochs=epochs, n=n,
                batch_size=batch_size, mode=mode, callback=tracer)
    for i, seed in enumerate(seeds):
        write("lora_linearized", seed, tracer, i, watch)

    # Actual LoRA: the real block with W0 + BA, from the same initial A, one seed at a time.
    block = problem.block.double()
    inputs, test_inputs = (problem.train_inputs.double(),), [(problem.test_inputs.double(),)]
    objective = block_objective(block, block.targets, inputs, problem.train_labels)
    base = {name: block.get_submodule(name).weight.detach() for name in block.targets}
    for i, seed in enumerate(seeds):
        with Stopwatch() as watch:
            state = LoraState({name: torch.zeros(m, rank, dtype=torch.float64) for name, (m, _) in shapes.items()},
                              {name: a0[name][i].clone() for name in shapes}, torch.tensor(0.0, dtype=torch.float64))

            def scores(s):
                return block_outputs(block, test_inputs, {k: base[k] + d for k, d in s.deltas().items()})

            tracer = Tracer(objective, problem.train_labels, weight_decay, scores, problem.test_labels, every)
            tracer(0, state)
            lora_gd(objective, state, lr=lr, weight_decay=weight_decay, epochs=epochs, n=n, batch_size=batch_size,
                    mode=mode, callback=tracer)
        write("lora_actual", seed, tracer, 0, watch)


if __name__ == "__main__":
    main()

"""LoRA-One's figures and summary tables, from run records only.

    python -m lorarepro.experiments.lora_one.plots <figure> --inputs …/metrics.json [landscape.parquet …] \
        --outputs figure.pdf figure.png [table.csv]

figure ∈ fig1c, fig2, fig2_traces, fig3, fig4, prec_gd. Curves are medians over seeds with the
range shaded; diverged runs are marked, never silently dropped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lorarepro.records import load_records, load_traces
from lorarepro.report.plotting import apply_style, curves, figure, save
from lorarepro.report.tables import mean_std, summarize, write_table

NAMES = {"lora_init": "LoRA-init", "spectral_init": "Spectral-init", "lora_one": "LoRA-One", "lora_ga": "LoRA-GA",
         "lora_sb": "LoRA-SB", "gd": "GD", "prec_gd": "Prec-GD", "full_ft": "Full FT", "lora": "LoRA"}


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(name=frame["method"].map(NAMES))


def _every(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Every k-th step (and the last): enough points for a curve, fewer for seaborn to aggregate."""
    last = frame["step"].max()
    return frame[(frame["step"] % k == 0) | (frame["step"] == last)]


def fig2(records: pd.DataFrame, traces: pd.DataFrame, outputs: list[str], scale: str) -> None:
    frame = records.assign(d=records["params.d"].astype(int), alpha2=records["params.alpha2"])
    frame["dimension"] = frame["d"].map("d = k = {}".format)
    order = [f"d = k = {d}" for d in sorted(frame["d"].unique())]
    fig, axes = figure(ncols=2, width=4.4)
    for ax, metric, label in ((axes[0, 0], "metrics.final_log_risk", "log risk at the last step"),
                              (axes[0, 1], "metrics.min_angle", r"best angle $\min_t\|U_{r^*,\perp}(G)^\top U_{r^*}(A_t)\|$")):
        curves(ax, frame, x="alpha2", y=metric, hue="dimension", hue_order=order, logx=True, marker="o")
        diverged = frame[frame["status"] == "diverged"].groupby(["d", "alpha2"]).size().reset_index()
        for _, row in diverged.iterrows():
            ax.annotate(f"d = {int(row['d'])}: diverged", (row["alpha2"], 0.96), xycoords=("data", "axes fraction"),
                        ha="right", fontsize=8, color="crimson")
        ax.set(xlabel=r"init variance $\alpha^2$", ylabel=label)
    axes[0, 0].set_title("Risk (Figure 2, left)")
    axes[0, 1].set_title("Alignment (Figure 2, right)")
    save(fig, outputs[:2])
    summary = summarize(frame, ["d", "alpha2"], ["final_log_risk", "min_angle", "max_alignment_B", "thm33_ratio"])
    summary["diverged runs"] = frame.groupby(["d", "alpha2"], sort=False)["status"].apply(
        lambda s: int((s == "diverged").sum())).to_numpy()
    table = pd.DataFrame({
        "d": summary["d"], "α²": summary["alpha2"], "seeds": summary["seeds"],
        "final log risk": [mean_std(m, s) for m, s in zip(summary["final_log_risk_mean"], summary["final_log_risk_std"])],
        "best angle": [mean_std(m, s, 3) for m, s in zip(summary["min_angle_mean"], summary["min_angle_std"])],
        "max Thm 3.1 alignment (t ≥ 1)": summary["max_alignment_B_mean"],
        "diverged runs": summary["diverged runs"]})
    write_table(table.sort_values(["d", "α²"]), outputs[2], title="Figure 2: LoRA-init, GD on task (3)", scale=scale,
                notes="Mean ± std over seeds (natural log). The paper shows these as plots only.")


def fig2_traces(records: pd.DataFrame, traces: pd.DataFrame, outputs: list[str], scale: str) -> None:
    frame = _every(traces, 10).assign(log_risk=lambda f: np.log(f["risk"]),
                                      alpha2=lambda f: f["params.alpha2"].map("{:g}".format))
    dims = sorted(frame["params.d"].unique())
    order = [f"{a:g}" for a in sorted(records["params.alpha2"].unique(), reverse=True)]
    fig, axes = figure(ncols=2, nrows=len(dims), width=4.4, layout="constrained")
    for row, d in enumerate(dims):
        sub = frame[frame["params.d"] == d]
        gone = sorted(records[(records["params.d"] == d) & (records["status"] == "diverged")]["params.alpha2"].unique())
        note = f" (diverged: α² = {', '.join(f'{a:g}' for a in gone)})" if gone else ""
        curves(axes[row, 0], sub, x="step", y="log_risk", hue="alpha2", hue_order=order)
        curves(axes[row, 1], sub, x="step", y="angle", hue="alpha2", hue_order=order, legend=False)
        axes[row, 0].set(ylabel="log risk", title=f"d = k = {d}{note}")
        axes[row, 1].set(ylabel="principal angle", title=f"d = k = {d}")
        axes[row, 0].legend(title=r"$\alpha^2$", fontsize=7)
    save(fig, outputs)


def fig3(records: pd.DataFrame, traces: pd.DataFrame, outputs: list[str], scale: str) -> None:
    seeds = sorted(traces["seed"].unique())
    apply_style()
    fig = plt.figure(figsize=(5.0 * len(seeds), 4.6))
    target = np.asarray(records["params.target"].iloc[0], dtype=float)
    t = np.concatenate([np.linspace(-6, -0.35, 200), np.linspace(0.35, 6, 200)])
    styles = {("lora_init", "squared_targets"): ("LoRA-init", "C0"),
              ("spectral_init", "squared_targets"): ("Spectral-init (paper's g = ¼Σỹ²x̃)", "C1"),
              ("spectral_init", "gradient"): ("Spectral-init (g = ¼Σỹx̃, the gradient)", "C2")}
    for k, seed in enumerate(seeds):
        ax = fig.add_subplot(1, len(seeds), k + 1, projection="3d")
        for side in (t < 0, t > 0):
            ax.plot(target[0] / t[side], target[1] / t[side], t[side], "k--", lw=0.8,
                    label="global minimisers" if side[0] else None)
        for (method, form), (label, color) in styles.items():
            run = traces[(traces["seed"] == seed) & (traces["method"] == method) & (traces["params.g_form"] == form)]
            run = run[np.isfinite(run["loss"]) & (run[["a1", "a2", "b"]].abs().max(axis=1) < 6)]
            if run.empty:
                continue
            ax.plot(run["a1"], run["a2"], run["b"], color=color, label=label)
            ax.scatter(*run[["a1", "a2", "b"]].iloc[0], color=color, marker="o", s=30)
            status = records[(records["seed"] == seed) & (records["method"] == method)
                             & (records["params.g_form"] == form)]["status"].iloc[0]
            ax.scatter(*run[["a1", "a2", "b"]].iloc[-1], color=color, marker="x" if status == "diverged" else "*", s=80)
        ax.set(xlim=(-6, 6), ylim=(-6, 6), zlim=(-6, 6), xlabel="$a_1$", ylabel="$a_2$", zlabel="$b$",
               title=f"seed {seed}")
        if k == 0:
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Figure 3: GD trajectories (○ start, ★ end, × diverged)")
    save(fig, outputs)


def fig4(records: pd.DataFrame, traces: pd.DataFrame, outputs: list[str], scale: str) -> None:
    frame = _named(_every(traces, 5))
    order = [NAMES[m] for m in ("lora_one", "lora_ga", "lora_sb")]
    cases = sorted(frame[["params.r", "params.r_star"]].drop_duplicates().itertuples(index=False))
    fig, axes = figure(ncols=len(cases), width=4.4)
    for ax, (r, r_star) in zip(axes[0], cases):
        sub = frame[(frame["params.r"] == r) & (frame["params.r_star"] == r_star)]
        curves(ax, sub, x="step", y="risk", hue="name", hue_order=order, logy=True)
        floor = records[(records["params.r"] == r) & (records["params.r_star"] == r_star)]["metrics.risk_floor"].iloc[0]
        if floor > 0:
            ax.axhline(floor, color="grey", ls="--", lw=0.9, label=r"$\frac{1}{2}\sum_{i>r}\sigma_i^2$")
        kind = "under-ranked" if r < r_star else "over-ranked"
        ax.set(xlabel="GD step", ylabel=r"risk $\frac{1}{2}\|A_tB_t-\Delta\|_F^2$", title=f"{kind}: r={r}, r*={r_star}")
        ax.legend(fontsize=8)
    save(fig, outputs[:2])
    rows = records.assign(case=np.where(records["params.r"] < records["params.r_star"], "under-ranked", "over-ranked"))
    summary = summarize(_named(rows), ["case", "name"], ["final_risk", "risk_floor"])
    table = pd.DataFrame({"case": summary["case"], "method": summary["name"], "seeds": summary["seeds"],
                          "final risk": [f"{m:.3g} ± {s:.2g}" for m, s in zip(summary["final_risk_mean"],
                                                                             summary["final_risk_std"])],
                          "rank-r optimum": summary["risk_floor_mean"]})
    write_table(table, outputs[2], title="Figure 4: final risk after GD", scale=scale,
                notes="Δ normalised to σ₁ = 1 where `normalize_delta` is set. The paper shows these as plots only.")


def prec_gd(records: pd.DataFrame, traces: pd.DataFrame, outputs: list[str], scale: str) -> None:
    tols = sorted((c for c in records.columns if c.startswith("metrics.iters_to_")), reverse=True)
    long = _named(records).melt(id_vars=["name", "params.kappa", "seed"], value_vars=tols, var_name="tol",
                                value_name="iterations")
    long["curve"] = long["name"] + ", risk ≤ " + long["tol"].str.replace("metrics.iters_to_", "")
    fig, axes = figure(ncols=2, width=4.6)
    curves(axes[0, 0], long, x="params.kappa", y="iterations", hue="curve", logx=True, logy=True, marker="o")
    axes[0, 0].set(xlabel=r"condition number $\kappa(\Delta)$", ylabel="GD steps to reach the risk",
                   title="Iterations vs κ (Theorem C.21)")
    axes[0, 0].legend(fontsize=7)
    frame = _named(_every(traces, 5)).assign(κ=lambda f: f["params.kappa"].map("κ={:g}".format))
    kappas = [f"κ={k:g}" for k in sorted(records["params.kappa"].unique())]
    curves(axes[0, 1], frame.rename(columns={"name": "optimizer"}), x="step", y="risk", hue="κ", hue_order=kappas,
           style="optimizer", style_order=["GD", "Prec-GD"], logy=True)
    axes[0, 1].set(xlabel="step", ylabel="risk", title="Risk from Spectral-init")
    axes[0, 1].legend(fontsize=7, ncol=2)
    save(fig, outputs[:2])
    summary = summarize(_named(records), ["params.kappa", "name"], [t.removeprefix("metrics.") for t in tols])
    table = summary.rename(columns={"params.kappa": "κ", "name": "method"})
    write_table(table, outputs[2], title="Theorem C.21: GD steps to a risk tolerance", scale=scale,
                notes="Mean and std over seeds; NaN = not reached within the run.")


def fig1c(records: pd.DataFrame, traces: pd.DataFrame, landscapes: dict[int, pd.DataFrame], outputs: list[str],
          scale: str) -> None:
    order = [NAMES[m] for m in ("full_ft", "lora", "lora_one")]
    frame = _named(traces[traces["method"] != "pretrain"])
    fig, axes = figure(ncols=2, width=4.6, height=3.8)
    curves(axes[0, 0], frame, x="step", y="loss", hue="name", hue_order=order, logy=True)
    axes[0, 0].set(xlabel="fine-tuning step", ylabel="cross-entropy (even digits)", title="Loss")
    seed = int(frame["seed"].min())
    grid = landscapes[seed]
    n = int(np.sqrt(len(grid)))
    ax = axes[0, 1]
    contour = ax.contourf(grid["x"].to_numpy().reshape(n, n), grid["y"].to_numpy().reshape(n, n),
                          np.log(grid["loss"].to_numpy()).reshape(n, n), levels=20, cmap="Greys", alpha=0.6)
    fig.colorbar(contour, ax=ax, label="log loss")
    for k, name in enumerate(order):
        run = frame[(frame["seed"] == seed) & (frame["name"] == name)]
        ax.plot(run["x"], run["y"], color=f"C{k}", label=name)
        ax.scatter(run["x"].iloc[0], run["y"].iloc[0], color=f"C{k}", marker="o", s=25)
        ax.scatter(run["x"].iloc[-1], run["y"].iloc[-1], color=f"C{k}", marker="*", s=90)
    ax.set(xlabel="PC 1 of the Full-FT path", ylabel="PC 2", title=f"Trajectories (seed {seed}; ○ start, ★ end)")
    ax.legend(fontsize=8)
    save(fig, outputs[:2])
    runs = _named(records[records["method"] != "pretrain"])
    summary = summarize(runs, ["name"], ["initial_loss", "final_loss", "final_accuracy", "path_distance_to_full_ft"])
    table = pd.DataFrame({"method": summary["name"], "seeds": summary["seeds"],
                          "loss at step 0": [mean_std(m, s, 3) for m, s in zip(summary["initial_loss_mean"],
                                                                                summary["initial_loss_std"])],
                          "loss at the last step": [mean_std(m, s, 3) for m, s in zip(summary["final_loss_mean"],
                                                                                       summary["final_loss_std"])],
                          "accuracy": [mean_std(m, s, 3) for m, s in zip(summary["final_accuracy_mean"],
                                                                          summary["final_accuracy_std"])],
                          "mean 2-D distance to Full FT": [mean_std(m, s, 3) for m, s in zip(
                              summary["path_distance_to_full_ft_mean"], summary["path_distance_to_full_ft_std"])]})
    write_table(table, outputs[2], title="Figure 1(c): fine-tuning on even MNIST digits", scale=scale,
                notes="Mean ± std over seeds. The paper shows these as plots only.")


FIGURES = {"fig2": fig2, "fig2_traces": fig2_traces, "fig3": fig3, "fig4": fig4, "prec_gd": prec_gd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figure", choices=[*FIGURES, "fig1c"])
    parser.add_argument("--inputs", nargs="+", required=True)
    parser.add_argument("--outputs", nargs="+", required=True)
    parser.add_argument("--scale", required=True)
    args = parser.parse_args()
    paths = [p for p in args.inputs if Path(p).name == "metrics.json"]
    records, traces = load_records(paths), load_traces(paths)
    if args.figure == "fig1c":
        landscapes = {int(Path(p).stem.removeprefix("seed=")): pd.read_parquet(p)
                      for p in args.inputs if p.endswith(".parquet")}
        fig1c(records, traces, landscapes, args.outputs, args.scale)
    else:
        FIGURES[args.figure](records, traces, args.outputs, args.scale)


if __name__ == "__main__":
    main()

"""Figure 2 (convergence of the token-averaged contrastive reward) and the token-level reward heat-map."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FIG2_METHODS = {"bandit-reinforce": "sentence-level (bandit) REINFORCE, Eq. 42",
                "token-reinforce": "token-level scalar REINFORCE, Eq. 43",
                "aligndistil-on-static": "AlignDistil (distributional token-level), static β = 0.08"}


def read_curve(stage_dir: Path, key: str = "token_reward") -> list[float]:
    rows = [json.loads(l) for l in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r]


def smooth(x, window: int = 5) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if len(x) < window:
        return x
    return np.convolve(np.pad(x, (window - 1, 0), mode="edge"), np.ones(window) / window, mode="valid")


def convergence_speedups(curves: dict[str, list[list[float]]], fraction: float = 0.9, window: int = 5):
    """Steps each method needs to reach a common target: ``fraction`` of the way from the mean start to the
    token-level scalar baseline's final value (mean of its last 10% of steps). Returns (target, {method: [steps
    per seed]}) with None where a run never reaches it."""
    from reproduce.claims import steps_to_reach

    start = np.mean([np.mean(c[:3]) for cs in curves.values() for c in cs])
    base = curves["token-reinforce"]
    final = np.mean([np.mean(c[-max(1, len(c) // 10):]) for c in base])
    target = start + fraction * (final - start)
    return float(target), {m: [steps_to_reach(c, target, window) for c in cs] for m, cs in curves.items()}


def plot_figure2(curves: dict[str, list[list[float]]], path: Path, caption: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for m, cs in curves.items():
        n = min(len(c) for c in cs)
        arr = np.stack([smooth(c[:n]) for c in cs])
        mean = arr.mean(0)
        ax.plot(np.arange(n), mean, label=FIG2_METHODS.get(m, m))
        if len(cs) > 1:
            se = arr.std(0, ddof=1) / np.sqrt(len(cs))
            ax.fill_between(np.arange(n), mean - se, mean + se, alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("token-averaged contrastive reward")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.text(0.01, 0.01, caption, fontsize=6.5, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_token_heatmap(rows: list[dict], path: Path, title: str) -> Path:
    """rows: [{"prompt", "tokens": [str], "reward": [float], "alpha": [float], "gold": [float] | None}]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows = sum(3 if r.get("gold") is not None else 2 for r in rows)
    width = max(len(r["tokens"]) for r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(8, 0.55 * width), 1.25 * n_rows + 0.8), squeeze=False)
    for ax, r in zip(axes[:, 0], rows):
        lines = [("contrastive reward β0·log π_dpo/π_rev", r["reward"]), ("α_t", r["alpha"])]
        if r.get("gold") is not None:
            lines.append(("gold per-token reward", r["gold"]))
        mat = np.full((len(lines), width), np.nan)
        for i, (_, v) in enumerate(lines):
            v = np.asarray(v, dtype=float)
            scale = np.nanmax(np.abs(v)) or 1.0
            mat[i, :len(v)] = v / scale  # each row on its own scale; the numbers are printed in the cells
        ax.imshow(mat, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        for i, (_, v) in enumerate(lines):
            for j, x in enumerate(v):  # white on the dark ends of the colour scale
                ax.text(j, i, f"{x:.2f}", ha="center", va="center", fontsize=5.5,
                        color="white" if abs(mat[i, j]) > 0.6 else "black")
        ax.set_yticks(range(len(lines)), [l for l, _ in lines], fontsize=6)
        ax.set_xticks(range(len(r["tokens"])), [t.replace("\n", "⏎") for t in r["tokens"]], rotation=60, fontsize=6)
        ax.set_title(f"prompt: {r['prompt']}", fontsize=7, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")  # keep the long row labels inside the image
    plt.close(fig)
    return path

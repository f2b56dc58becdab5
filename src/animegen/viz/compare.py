"""Figures of the sampler comparison (report Q2): metrics against NFE, and the same seeds side by side."""

from __future__ import annotations

from pathlib import Path

import torch

from animegen.core.atomic import atomic_path
from animegen.viz.progress import save_progress_figure


def plot_metrics_vs_nfe(rows: list[dict], metrics: list[str], path: Path) -> None:
    """One panel per metric against network evaluations per image (log x): a line per sampler variant, and the
    most expensive row (DDPM when present) as a dashed reference line in the quality panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*metrics, "img_per_s"]
    variants = list(dict.fromkeys(row_label(r) for r in rows))
    ref = max(rows, key=lambda r: r["nfe"])
    # many variants: 20 distinct colours and a marker cycle, so no two lines look alike
    colours = plt.get_cmap("tab20" if len(variants) > 10 else "tab10").colors
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 2.2, 3.2), dpi=100, squeeze=False)
    for ax, metric in zip(axes[0], panels):
        for k, variant in enumerate(variants):
            mine = sorted((r for r in rows if row_label(r) == variant), key=lambda r: r["nfe"])
            ax.plot([r["nfe"] for r in mine], [r[metric] for r in mine], marker="osD^v<>"[k % 7], linestyle="-",
                    color=colours[k % len(colours)], label=variant)
        if metric != "img_per_s":
            ax.axhline(ref[metric], color="black", linestyle="--", linewidth=0.8,
                       label=f"{row_label(ref)} {ref['nfe']} (reference)")
        ax.set(xscale="log", xlabel="NFE per image", title=metric.upper() if metric != "img_per_s" else "img/s")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / (3.2 * len(panels) + 2.2), 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def row_label(row: dict) -> str:
    """A report row's sampler and its options, e.g. 'ddim eta=1' (rows written before options have only 'sampler')."""
    return row.get("variant", row["sampler"])


def save_side_by_side(images: list[torch.Tensor], labels: list[str], path: Path) -> int:
    """images: one uint8 (k, 3, H, W) tensor per sampler (same seeds) -> a row per sampler, a column per seed."""
    columns = [torch.stack([per_sampler[j] for per_sampler in images]) for j in range(images[0].shape[0])]
    return save_progress_figure(columns, [f"seed {j}" for j in range(len(columns))], path,
                                "the same seeds through each sampler", row_labels=labels)

"""The progressive-denoising figure (report Q1): rows = samples, columns = steps from noise to image."""

from __future__ import annotations

from pathlib import Path

import torch

from animegen.core.atomic import atomic_path


def pick_frames(num_steps: int, frames: int) -> list[int]:
    """`frames` evenly spaced indices into the states [x_T, after step 0, ..., after step num_steps-1]."""
    total = num_steps + 1
    frames = min(frames, total)
    return sorted({round(i * (total - 1) / (frames - 1)) for i in range(frames)}) if frames > 1 else [total - 1]


def save_progress_figure(frames: list[torch.Tensor], titles: list[str], path: Path, suptitle: str,
                         row_labels: list[str] | None = None) -> int:
    """frames: one uint8 (num, 3, H, W) tensor per column; titles: one per column; row_labels: one per row
    (optional). Writes a PNG and returns the number of image panels drawn (num x columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = frames[0].shape[0], len(frames)
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols + 0.3, 0.95 * rows + 0.6), dpi=100, squeeze=False)
    for c, (column, title) in enumerate(zip(frames, titles)):
        for r in range(rows):
            ax = axes[r][c]
            ax.imshow(column[r].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=7)
    panels = sum(1 for ax in fig.axes if ax.images)
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout(pad=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return panels

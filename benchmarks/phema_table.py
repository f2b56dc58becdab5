"""The post-hoc EMA sweep's table and plot (benchmarks/phema_sweep.sh writes what this reads).

    python benchmarks/phema_table.py OUT SEED [SEED ...]

reads OUT/seed-SEED/report.json (`animegen compare` of the rebuilt widths) and OUT/ema/std-*/phema.json, and
writes OUT/table.md (a row per width: AFD and SWD per seed set, the profile fit error) and OUT/phema.png (AFD and
SWD against the width, a line per seed set).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load_rows(out: Path, seeds: list[int]) -> dict[int, dict[float, dict]]:
    """{seed: {std: report row}} from each seed's compare report."""
    found = {}
    for seed in seeds:
        report = json.loads((out / f"seed-{seed}" / "report.json").read_text())
        found[seed] = {float(r["model"].removeprefix("std-")): r for r in report["rows"]}
    return found


def table(rows: dict[int, dict[float, dict]], out: Path) -> str:
    seeds = list(rows)
    stds = sorted(rows[seeds[0]])
    num = rows[seeds[0]][stds[0]]["num"]
    head = ["EMA width (std)"]
    for seed in seeds:
        span = f"seeds {seed}-{seed + num - 1}"
        head += [f"AFD ↑ ({span})", f"SWD ↓ ({span})"]
    head.append("profile fit error")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for std in stds:
        card = json.loads((out / "ema" / f"std-{std:.3f}" / "phema.json").read_text())
        cells = [f"{std:.3f}"]
        for seed in seeds:
            cells += [f"{rows[seed][std]['afd']:.3f}", f"{rows[seed][std]['swd']:.1f}"]
        cells.append(f"{card['fit_error']:.1%}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: dict[int, dict[float, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric, words in zip(axes, ("afd", "swd"), ("AFD (higher is better)", "SWD x1e3 (lower is better)")):
        for seed, by_std in rows.items():
            stds = sorted(by_std)
            num = by_std[stds[0]]["num"]
            ax.plot(stds, [by_std[s][metric] for s in stds], "o-", label=f"seeds {seed}-{seed + num - 1}")
        ax.set_xlabel("EMA width sigma_rel (post-hoc)")
        ax.set_title(words)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    out, seeds = Path(argv[0]), [int(s) for s in argv[1:]]
    rows = load_rows(out, seeds)
    text = table(rows, out)
    (out / "table.md").write_text(text + "\n")
    plot(rows, out / "phema.png")
    print(text)
    print(f"wrote {out / 'table.md'} and {out / 'phema.png'}")


if __name__ == "__main__":
    main(sys.argv[1:])

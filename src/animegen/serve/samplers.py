"""The samplers the page offers and the options each reads, from the samplers' table (samplers/table.py)."""

from __future__ import annotations

from animegen.samplers.table import SAMPLERS


def sampler_options() -> dict[str, list[str]]:
    """Sampler name -> the options a request may set for it besides the sampler itself (of steps, eta,
    spacing); a sampler that runs all T steps reads none."""
    return {name: [option for option in info.options if option in ("steps", "eta", "spacing")]
            for name, info in SAMPLERS.items()}

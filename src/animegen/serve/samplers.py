"""The samplers the page offers and the options each reads: the one place in `serve` that reads the samplers'
table, so a change of that table's shape is met here alone."""

from __future__ import annotations

from animegen.core.names import SAMPLERS


def sampler_options() -> dict[str, list[str]]:
    """Sampler name -> the options a request may set for it besides the sampler itself (of steps, eta,
    spacing); ddpm runs all T steps and reads none."""
    return {name: [option for option in options if option in ("steps", "eta", "spacing")]
            for name, options in SAMPLERS.items()}

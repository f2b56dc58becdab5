"""Write docs/samplers.md from the samplers' table (src/animegen/samplers/table.py); tests/test_samplers.py
checks that the file says what the table does, so run this after changing the table."""

from __future__ import annotations

from pathlib import Path

from animegen.samplers.table import markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "samplers.md"
HEAD = """# Samplers

Every sampler `generate`, `compare`, `progress`, the Python API and `serve` offer, as the one table in
`src/animegen/samplers/table.py` lists them (this file is written from it by `scripts/sampler_table.py`).
`--sampler NAME --steps S --eta E --spacing SP --threshold TH` pick one; `compare --samplers` takes
`NAME:S:eta=E:spacing=SP:threshold=TH`. A sampler that needs a student runs on the few-step student that ships with
the model (the shipped model's, or one `animegen export --student` put beside it), and is refused in one line
where there is none. Measured quality and speed: [q2-ddpm-vs-ddim.md](q2-ddpm-vs-ddim.md).

"""


def main() -> None:
    DOC.write_text(HEAD + markdown())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()

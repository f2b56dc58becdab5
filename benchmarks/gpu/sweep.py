"""The `gpu` preset's candidates at equal GPU-minutes on one GPU, and whether sharing the GPU ranks them as running
alone would. benchmarks/gpu/sweep.sh runs it on the lent machine; docs/gpu-preset.md has the plan and the results.

    PYTHONPATH=src python benchmarks/gpu/sweep.py [--minutes 6] [--alone base,dim128] [--dry]

1. every candidate of benchmarks/gpu/sweep_candidates.json at once for --minutes (a 64-px UNet leaves most of an
   H100 idle, so 8 runs share it; each gets the same share);
2. the --alone candidates one after another, each alone for minutes / (number of candidates): the GPU time each
   had while sharing, if sharing splits the GPU evenly;
3. 1000 faces (seeds 0-999, the preset's sampler) from every run, AFD + SWD against faces-1k on the CPU cores.
summary.json: a row a run (the alone runs are NAME-alone); details.json: each candidate's settings and images seen,
the ranking (mean rank of AFD and SWD), and the sharing check: does each metric order the alone runs as it orders
the same candidates shared, and what the shared runs made together (summed img/s) against one alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from jobs import occasion_parser, Run, Session, device_name, images_seen, rate, run_together, score, summary_row, write_results

CANDIDATES = Path(__file__).with_name("sweep_candidates.json")


def ranking(runs: list[Run]) -> list[str]:
    """Names best first by the mean of their AFD rank (higher is better) and SWD rank (lower is better)."""
    scored = [r for r in runs if "afd" in r.scores]
    by_afd = sorted(scored, key=lambda r: -r.scores["afd"])
    by_swd = sorted(scored, key=lambda r: r.scores["swd"])
    return sorted((r.name for r in scored), key=lambda n: ([r.name for r in by_afd].index(n)
                                                          + [r.name for r in by_swd].index(n)))


def same_order(a: list[float | None], b: list[float | None]) -> bool | None:
    """Whether two lists order their items alike (None when a value is missing)."""
    if None in a or None in b:
        return None
    order = lambda xs: sorted(range(len(xs)), key=lambda i: xs[i])  # noqa: E731
    return order(a) == order(b)


def sharing_check(session: Session, shared: dict[str, Run], alone: list[Run]) -> dict:
    """Alone against shared, for the candidates run both ways: their scores, images seen and img/s."""
    def facts(run: Run) -> dict:
        return {"img_per_s": rate(run.log_rows(session))[0], "images_seen": images_seen(session, run), **run.scores}

    names = [r.name.removesuffix("-alone") for r in alone]
    both = {n: {"shared": facts(shared[n]), "alone": facts(r)} for n, r in zip(names, alone)}
    orders = {metric: same_order([both[n]["shared"].get(metric) for n in names],
                                 [both[n]["alone"].get(metric) for n in names])
              for metric in ("afd", "swd", "images_seen")}
    rates = [rate(r.log_rows(session))[0] for r in shared.values()]
    return {"candidates": both, "same_order": orders,
            "shared_sum_img_per_s": sum(x for x in rates if x) if all(rates) else None}


def main() -> None:
    parser = occasion_parser(__doc__, "/tmp/animegen-gpu/sweep", 6.0, "each candidate's budget, all sharing the GPU")
    parser.add_argument("--alone", default="base,dim128", help="candidates also run alone (the sharing check)")
    args = parser.parse_args()
    session = Session(args.data.resolve(), args.real.resolve(), args.work.resolve(), args.results.resolve(),
                      args.dry, 16 if args.dry else args.num)
    candidates = json.loads(CANDIDATES.read_text())
    if args.dry:  # three candidates are enough to test the plan
        candidates = dict(list(candidates.items())[:3])
    shared = {name: Run(name, "gpu", args.minutes, c["set"]) for name, c in candidates.items()}
    alone_names = [n for n in args.alone.split(",") if n in candidates]
    share = args.minutes / len(shared)
    alone = [Run(f"{name}-alone", "gpu", round(share, 3), candidates[name]["set"]) for name in alone_names]
    session.say(f"{len(shared)} candidates sharing the device for {args.minutes} min, then "
                f"{', '.join(alone_names)} alone for {share:.2f} min each")
    session.prepare_data()
    run_together(session, list(shared.values()), threads=1 if args.dry else 2)
    for run in alone:
        run_together(session, [run], threads=1 if args.dry else 8)
    runs = [*shared.values(), *alone]
    score(session, runs)
    gpu = device_name(session)
    details = {"device": gpu, "minutes": args.minutes, "alone_minutes": share, "dry": args.dry,
               "candidates": {n: {**candidates[n], "images_seen": images_seen(session, r)} for n, r in shared.items()},
               "ranking": ranking(list(shared.values())),
               "sharing": sharing_check(session, shared, alone),
               "failed": [r.name for r in runs if r.returncode != 0 or "error" in r.scores]}
    write_results(session, [summary_row(session, r, gpu) for r in runs], details, "sweep")
    session.say(f"ranking (shared): {details['ranking']}; sharing check: {details['sharing']['same_order']}")


if __name__ == "__main__":
    main()

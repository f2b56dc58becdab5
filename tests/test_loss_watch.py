"""The collapse watch on the loss curves of three real runs (tests/fixtures/loss-curves.json): both H100 runs of
the `gpu` preset at lr 2e-3 collapsed, and stop as soon as the watch may say so; the CPU hour never stops."""

import json
from pathlib import Path

import pytest

from animegen.training.loss_watch import MIN_WINDOW, ROWS, LossWatch

CURVES = json.loads((Path(__file__).parent / "fixtures" / "loss-curves.json").read_text())


def first_stop(rows: list[list]) -> tuple[int, str] | None:
    watch = LossWatch()
    for step, loss, window in rows:
        if why := watch.update(step, loss, window):
            return step, why
    return None


@pytest.mark.parametrize("name", ["gpu_lr2e-3_collapsed_h100_8min", "gpu_lr2e-3_collapsed_recovered_h100_3min"])
def test_collapsed_h100_runs_stop_at_their_third_high_row(name):
    rows = CURVES[name]
    best_step, best = min(((step, loss) for step, loss, _ in rows[:20]), key=lambda r: r[1])
    high = [step for step, loss, _ in rows if step > best_step and loss >= 3 * best]
    stop = first_stop(rows)
    assert stop is not None
    step, why = stop
    # the 8-minute run went on 1,250 steps to its NaN, the 3-minute one 1,300 steps at 0.22 before it recovered
    assert step == high[ROWS - 1] <= best_step + 50 * ROWS + 50
    assert f"step {best_step}" in why and f"{best:.4g}" in why


def test_the_cpu_hour_never_stops():
    assert first_stop(CURVES["cpu_eager_bf16_60min"]) is None


def test_a_fall_between_high_rows_starts_the_count_again():
    rows = [[50, 0.2, 50], [100, 0.03, 50], [150, 0.2, 50], [200, 0.2, 50], [250, 0.05, 50], [300, 0.2, 50],
            [350, 0.2, 50]]
    assert first_stop(rows) is None
    assert first_stop(rows + [[400, 0.2, 50]])[0] == 400


def test_rows_over_few_steps_are_not_judged():
    # single small batches vary several-fold with the noise level drawn
    rows = [[s, loss, MIN_WINDOW - 1] for s, loss in enumerate([0.2, 0.01, 0.2, 0.2, 0.2, 0.2], 1)]
    assert first_stop(rows) is None

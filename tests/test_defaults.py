"""One default per setting: what a flag leaves out, the Python API and the workflow under both leave out the same
way, so a notebook and the command line draw the same faces from the same call."""

import inspect
from pathlib import Path

import pytest

import animegen
from animegen.api import Model
from animegen.cli import build_parser
from animegen.runs.model import TrainedModel
from animegen.workflows import compare, generate, progress


def cli_defaults(command: str) -> dict:
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {action.dest: action.default for action in sub._actions if action.dest != "help"}


def params(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def same(a, b) -> bool:
    """Equal up to spelling: a path and its text, a comma list and its tuple."""
    norm = lambda v: str(v) if isinstance(v, Path) else ",".join(v) if isinstance(v, (tuple, list)) else v  # noqa
    return norm(a) == norm(b)


# (command, flag dest) -> the (function, parameter) that takes the same setting
PAIRS = [
    (("generate", "num"), [(Model.save, "num"), (generate.generate, "num")]),
    (("generate", "seed"), [(Model.save, "seed"), (Model.generate, "seed"), (generate.generate, "seed")]),
    (("generate", "out"), [(Model.save, "folder")]),
    (("generate", "psi"), [(Model.save, "psi"), (generate.generate, "psi")]),
    (("generate", "compile"), [(animegen.load, "compile"), (TrainedModel.load, "compile")]),
    (("generate", "device"), [(animegen.load, "device"), (TrainedModel.load, "device")]),
    (("progress", "num"), [(Model.progress, "num"), (progress.progress, "num")]),
    (("progress", "frames"), [(Model.progress, "frames"), (progress.progress, "frames"),
                              (progress.progress_frames, "frames")]),
    (("progress", "out"), [(Model.progress, "out")]),
    (("compare", "samplers"), [(Model.compare, "samplers")]),
    (("compare", "num"), [(Model.compare, "num"), (compare.compare, "num")]),
    (("compare", "seed"), [(Model.compare, "seed"), (compare.compare, "seed")]),
    (("compare", "out"), [(Model.compare, "out")]),
    (("compare", "metrics"), [(Model.compare, "metrics"), (compare.compare, "metrics")]),
    (("evaluate", "metrics"), [(animegen.evaluate, "metrics")]),
]


@pytest.mark.parametrize("flag,readers", PAIRS, ids=[f"{c}--{d}" for (c, d), _ in PAIRS])
def test_a_flag_and_the_api_leave_a_setting_out_the_same_way(flag, readers):
    default = cli_defaults(flag[0])[flag[1]]
    for function, name in readers:
        assert same(params(function)[name], default), (function.__qualname__, name, params(function)[name], default)


def test_precision_is_auto_everywhere_it_is_left_out():
    from animegen.runs.config import TrainConfig

    assert cli_defaults("generate")["precision"] is None and cli_defaults("generate")["bf16"] is None  # -> auto
    assert params(animegen.load)["precision"] == params(TrainedModel.load)["precision"] == "auto"
    assert TrainConfig().precision == "auto" and TrainConfig().compile == "auto"

"""animegen: diffusion models (and a StyleGAN2) for anime faces, from one command line or from Python.

    import animegen
    run = animegen.train("faces/", preset="cpu", max_minutes=60)
    model = run.load()                       # animegen.load() gives the model shipped with animegen
    model.save("submission", num=1000, tgz="images.tgz")
    animegen.evaluate("submission", real="faces/")

The names below are imported on first use, so `animegen --version` does not load torch.
"""

__version__ = "0.1.0"
__all__ = ["train", "distill", "ema", "load", "load_student", "evaluate", "Model", "Run", "Comparison", "__version__"]


def __getattr__(name: str):
    if name in __all__:
        from animegen import api

        return getattr(api, name)
    raise AttributeError(f"module 'animegen' has no attribute {name!r}")

"""budgetvision: the best image models under hard parameter and step budgets.

    import budgetvision as bv
    run = bv.train("addnist-mobilenet", steps=2000, overrides={"optim.lr": 1e-3}, out="runs")
    model = bv.load(run.path)            # the trained network (EMA copy when kept), eval mode
    bv.evaluate(run.path).test_accuracy

The functions are imported on first use, so `import budgetvision` (and the command line) stays quick.
"""
from .version import __version__

_API = ("train", "resume", "load", "evaluate", "sample", "resolve", "Run")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'budgetvision' has no attribute {name!r}")

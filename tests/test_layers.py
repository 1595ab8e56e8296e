"""Imports run one way (DESIGN.md): each part of the package imports only parts on its own layer or
below. Read from the source, so an import that runs back up the layers fails here, not in a review."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "budgetvision"

# Lowest first. report.plots draws figures from numbers and imports nothing of the package, so every
# layer may draw; report (the HTML) reads finished runs and sits near the top.
LAYERS = [
    {"version", "errors", "io", "config", "report.plots", "papers"},   # papers: the five papers' table
    {"data", "models", "budget", "presets", "device", "optim", "distributed"},   # distributed: the torchrun group
    {"objectives"},
    {"setup"},                           # a run's setup before any write: shapes, parameter counts, prepare()
    {"evaluation"},                      # pure metrics over tensors and networks
    {"loop", "lr_find"},                 # the training loop (loop.py; `train` is the API function)
    {"runs"},                            # run folders, opening seeds, run-level evaluation and sampling
    {"experiments", "leaderboard", "export", "sweep", "bench"},  # bench: the tool's loop beside a plain one
    {"report", "report.html"},
    {"demo"},                            # the whole pipeline, report included
    {"api"},                             # the Python API: what the command line does, as functions
    {"selftest"},                        # every path of the tool briefly, through the API and the CLI
    {"budgetvision", "cli", "commands", "__main__"},  # the package's lazy public names, the command line
]
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def _part(module: str) -> str:
    """budgetvision.runs.folder -> runs; budgetvision.report.plots -> report.plots."""
    names = module.split(".")[1:]
    if not names:
        return "budgetvision"
    if names[0] == "report" and len(names) > 1:
        return f"report.{names[1]}"
    return names[0]


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path, text: str | None = None) -> list[str]:
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text() if text is None else text)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("budgetvision")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                # "from . import fid" names a module (count it), "from . import __version__" a value
                out += [f"{target}.{a.name}" if node.module is None and _is_module(f"{target}.{a.name}")
                        else target for a in node.names]
            elif node.module and node.module.startswith("budgetvision"):
                out.append(node.module)
    return out


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(_module_of(p)) for p in PACKAGE.rglob("*.py")}
    assert parts <= set(LAYER), f"parts without a layer: {sorted(parts - set(LAYER))}"


def test_imports_never_run_back_up_the_layers():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _part(_module_of(path))
        for target in _imports(path):
            if LAYER[_part(target)] > LAYER[source]:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports {target} "
                              f"({source}, layer {LAYER[source]} -> {_part(target)}, layer {LAYER[_part(target)]})")
    assert not upward, "imports running back up the layers:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import():
    """The checker must catch what it is for: a metric that opens run folders, in either spelling."""
    metric = PACKAGE / "evaluation" / "classification.py"
    for line in ("from ..runs import open_run", "from ..runs.folder import open_seed", "import budgetvision.runs",
                 "from .. import runs"):
        (target,) = _imports(metric, line)
        assert LAYER[_part(target)] > LAYER["evaluation"], line
    (value,) = _imports(PACKAGE / "device.py", "from . import __version__")
    assert _part(value) == "budgetvision" and LAYER["budgetvision"] > LAYER["device"]

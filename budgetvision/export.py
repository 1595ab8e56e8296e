"""ONNX export of a trained classifier, checked against onnxruntime on the run's own test images.

The exported graph takes images standardised as the run trained on them ((pixel / 255 - mean) / std,
the statistics are written into the model's metadata and beside it) with any batch size, and returns
logits: the network exactly as the run evaluates it (its EMA copy when kept, flip test-time
augmentation inside the graph where the recipe uses it).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .data import splits_of
from .data.loader import eval_batches
from .errors import BudgetVisionError
from .io import write_json
from .runs import open_seed
from .loop import input_stats

CHECK_IMAGES = 512        # real test images the ONNX graph is checked on
TOLERANCE = 1e-3          # max |logit difference| accepted between PyTorch and onnxruntime (fp32)


def export_onnx(run_dir: Path, out: Path, *, seed: int | None = None, data_root: Path | None = None,
                check_images: int = CHECK_IMAGES) -> dict:
    """Write `out` (ONNX) and `out.json` (how to feed it and how well it matched); return the latter."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise BudgetVisionError("ONNX export needs the onnx and onnxruntime packages "
                                "(pip install 'budgetvision[export]')") from None
    run_dir, out = Path(run_dir), Path(out)
    cpu = torch.device("cpu")
    opened = open_seed(run_dir, device=cpu, seed=seed, task="classify", data_root=data_root,
                       why="ONNX export takes a classifier run")
    cfg, network = opened.config, opened.network
    splits = splits_of(cfg.data, data_root)
    mean, std = input_stats(cfg, splits.spec)
    x, _ = next(eval_batches(*splits.test, check_images, mean=mean, std=std, device=cpu))
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(network, (x[:2],), dynamo=True, input_names=["images"], output_names=["logits"],
                                dynamic_shapes=({0: batch},), verbose=False)
    model = program.model_proto
    info = {"preset": cfg.preset, "run": str(run_dir), "seed": opened.seed, "step": opened.step,
            "input": "images (N, C, H, W) float32: (pixel / 255 - mean) / std per channel",
            "shape": [splits.spec.channels, splits.spec.image_size, splits.spec.image_size],
            "mean": list(mean), "std": list(std), "classes": list(splits.spec.class_names),
            "flip_tta": cfg.train.flip_tta, "tta_shift": cfg.train.tta_shift}
    for key, value in info.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(model, out)

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = network(x)
    got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    diff = (got - expected).abs().max().item()
    agree = (got.argmax(1) == expected.argmax(1)).double().mean().item()
    info.update({"check_images": len(x), "max_abs_logit_diff": diff, "argmax_agreement": agree,
                 "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__})
    write_json(out.with_name(out.name + ".json"), info)
    if diff > TOLERANCE or agree < 1.0:
        raise BudgetVisionError(f"ONNX graph {out} disagrees with PyTorch on the test images (max |diff| "
                                f"{diff:.2e}, argmax agreement {100 * agree:.2f} %); see {out}.json")
    return info

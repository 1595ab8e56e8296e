"""`budgetvision export`: a classifier or GAN run as ONNX, checked against onnxruntime."""
from __future__ import annotations

from pathlib import Path

from ._common import add_common


def add(sub) -> None:
    sp = sub.add_parser("export", help="a classifier or GAN run as ONNX, checked against onnxruntime")
    sp.add_argument("run", help="a classifier run (checked on its test images) or a GAN run (its generator, "
                                "checked on seeded latents)")
    sp.add_argument("--onnx", required=True, metavar="PATH", help="the .onnx file to write")
    sp.add_argument("--run-seed", type=int, default=None, help="which training seed's checkpoint (default: first)")
    add_common(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from ..data import data_root
    from ..export import export_onnx

    info = export_onnx(Path(args.run), Path(args.onnx), seed=args.run_seed, data_root=data_root(args.data_root))
    what, key = ("test images", "logit") if "max_abs_logit_diff" in info else ("seeded latents", "image")
    print(f"wrote {args.onnx} ({info['preset']}, seed {info['seed']}, step {info['step']}, opset {info['opset']}): "
          f"matches PyTorch on {info['check_images']} {what} (max |{key} diff| {info[f'max_abs_{key}_diff']:.1e}); "
          f"inputs: {info['input']}; in {args.onnx}.json")
    return 0

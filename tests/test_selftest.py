"""`budgetvision selftest`: the CPU run is the proof that the checks themselves work (every row
passes, each expected check is there, the environment is named, nothing is left behind); the CUDA
run where a GPU is present; a check that fails is isolated in its row; `--device cuda` without CUDA
is refused in one line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from budgetvision import selftest
from budgetvision.cli import main

REPO = Path(__file__).resolve().parents[1]
ENVIRONMENT = {"budgetvision", "python", "platform", "torch", "cuda", "cudnn", "cuda_available", "gpus", "device",
               "device_name", "bf16", "threads", "onnxruntime"}
EXPECTED = ["presets", "train-classifier", "train-gan", "train-diffusion", "train-pca", "resume", "sample-eval",
            "bench", "onnx-export", "torchrun"]


def _selftest(device: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    # A temporary folder of the test's own, to see that the selftest leaves nothing in it.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(scratch)}
    done = subprocess.run([sys.executable, "-m", "budgetvision", "selftest", "--device", device, "--json",
                           "--no-progress"], capture_output=True, text=True, env=env, timeout=900)
    assert not list(scratch.iterdir()), f"left behind: {list(scratch.iterdir())}"
    return done, json.loads(done.stdout)


def _assert_passes(done, report: dict, device: str) -> None:
    failed = [f"{r['check']}: {r['detail']}" for r in report["checks"] if not r["ok"]]
    assert not failed and done.returncode == 0, (failed, done.stderr[-2000:])
    assert [r["check"] for r in report["checks"]] == EXPECTED == [name for name, _ in selftest.CHECKS]
    for row in report["checks"]:
        assert set(row) == {"check", "ok", "seconds", "detail"} and row["seconds"] >= 0 and row["detail"]
    env = report["environment"]
    assert ENVIRONMENT <= set(env) and env["torch"] == torch.__version__ and env["device"].startswith(device)
    assert report["ok"] is True and report["seconds"] >= sum(r["seconds"] for r in report["checks"]) * 0.99


def test_selftest_passes_on_this_cpu(tmp_path):
    done, report = _selftest("cpu", tmp_path)
    _assert_passes(done, report, "cpu")
    rows = {r["check"]: r["detail"] for r in report["checks"]}
    assert "bit-identical to the uninterrupted run" in rows["resume"] and "SIGKILLed at step" in rows["resume"]
    assert "2 processes (Gloo)" in rows["torchrun"]
    assert "not compiled" in rows["train-classifier"]   # compile is for CUDA (selftest.COMPILE_ON)
    precision = "bf16 autocast" if report["environment"]["bf16"] else "fp32"
    assert all(precision in rows[f"train-{k}"] for k in ("classifier", "gan", "diffusion", "pca"))
    assert rows["sample-eval"].count("images/s") == 3 and "dpmpp2m" in rows["sample-eval"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the CUDA selftest needs one")
def test_selftest_passes_on_cuda(tmp_path):
    done, report = _selftest("cuda", tmp_path)
    _assert_passes(done, report, "cuda")
    assert report["environment"]["gpus"] >= 1 and report["environment"]["cuda"]
    assert ", compiled" in next(r["detail"] for r in report["checks"] if r["check"] == "train-classifier")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present: the refusal is for machines without it")
def test_cuda_without_cuda_is_refused_in_one_line(capsys):
    assert main(["selftest", "--device", "cuda"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "budgetvision: error: device 'cuda' requested but CUDA is not available here\n"


def test_a_failing_check_is_its_row_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    seen = []

    def broken(ctx):
        print("noise that must not reach the report")
        raise RuntimeError("the first line\nand a second one")

    def fine(ctx):
        seen.append(ctx.work)
        (ctx.work / "file").write_text("x")
        return "all good"

    monkeypatch.setattr(selftest, "CHECKS", [("broken", broken), ("fine", fine),
                                             ("needs", lambda ctx: ctx.run_of("gan"))])
    monkeypatch.setattr(selftest.tempfile, "tempdir", str(tmp_path))
    assert main(["selftest", "--device", "cpu", "--json", "--no-progress"]) == 1
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert [(r["check"], r["ok"], r["detail"]) for r in report["checks"]] == [
        ("broken", False, "RuntimeError: the first line"), ("fine", True, "all good"),
        ("needs", False, "needs the gan run, which its training check did not produce")]
    assert report["ok"] is False and seen and not seen[0].exists()   # the work folder is gone

    # --out keeps it; the table names the failure and the count
    assert main(["selftest", "--device", "cpu", "--out", str(tmp_path / "kept")]) == 1
    out, _ = capsys.readouterr()
    assert (tmp_path / "kept" / "file").exists()
    lines = out.splitlines()
    assert lines[0].startswith("budgetvision ") and "selftest on cpu" in lines[0] and "torch" in lines[1]
    assert lines[2].split()[:2] == ["broken", "FAIL"] and lines[3].split()[:2] == ["fine", "ok"]
    assert lines[-1].startswith("2 of 3 checks failed: broken, needs in")

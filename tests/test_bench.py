"""`budgetvision bench` in its smoke mode (two steps per loop on digits): every JSON field with its
type, the ratio, the work per image pinned against an independent FlopCounterMode count, the result
files and the generated speed table (docs/speed.md); and `--threads` reaching torch. No timing is asserted:
these numbers come from whatever else the machine is doing."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from budgetvision import bench
from budgetvision.api import resolve
from budgetvision.cli import main
from budgetvision.errors import BudgetVisionError
from budgetvision.leaderboard import REPO_RESULTS
from budgetvision.setup import shape_spec
from budgetvision.objectives import build_objective
from budgetvision.presets import PRESETS

SMOKE = ["--dataset", "digits", "--device", "cpu", "--steps", "2", "--window", "1", "--warmup", "1",
         "--samples", "2"]
FIELDS = {
    "preset": str, "task": str, "dataset": str, "device": str, "device_name": str, "threads": int,
    "batch_size": int, "params": int, "tool_images_per_s": float, "plain_images_per_s": float,
    "ratio": float, "gflop_per_image": float, "tool_gflop_per_s": float, "plain_gflop_per_s": float,
    "peak_gflop_per_s": float, "peak_dtype": str, "tool_peak_share": float, "peak_kernels_gflop_per_s": dict,
    "sampling_images_per_s": (float, type(None)), "sampler": (str, type(None)), "sampling_rates": dict,
    "step_shares": dict, "tool_settings": dict, "overrides": list,
    "steps": int, "window": int, "warmup": int, "samples": int, "workers": int, "torch": str,
    "budgetvision": str, "commit": (str, type(None)), "date": str, "command": str,
}
# FLOPs per training image on digits (1 x 16 x 16, 10 classes), forward + backward, as FlopCounterMode counts
LENET_FLOPS = 737_520
VDIFFUSION_FLOPS = 312_471_552


def _check_row(row: dict, preset: str, task: str) -> None:
    assert set(FIELDS) <= set(row), sorted(set(FIELDS) - set(row))
    for key, kind in FIELDS.items():
        assert isinstance(row[key], kind) and not isinstance(row[key], bool), (key, row[key])
    assert row["preset"] == preset and row["task"] == task and row["dataset"] == "digits"
    assert row["device"] == "cpu" and row["steps"] == 2 and row["window"] == 1 and row["warmup"] == 1
    assert row["tool_images_per_s"] > 0 and row["plain_images_per_s"] > 0
    assert row["ratio"] == row["tool_images_per_s"] / row["plain_images_per_s"]
    assert row["tool_gflop_per_s"] == row["gflop_per_image"] * row["tool_images_per_s"]
    assert row["plain_gflop_per_s"] == row["gflop_per_image"] * row["plain_images_per_s"]
    assert row["tool_peak_share"] == row["tool_gflop_per_s"] / row["peak_gflop_per_s"]
    assert row["peak_gflop_per_s"] == max(row["peak_kernels_gflop_per_s"].values())
    assert row["peak_dtype"] == ("bf16" if row["tool_settings"]["bf16"] else "fp32")
    assert row["torch"] == torch.__version__ and row["command"].startswith(f"budgetvision bench --preset {preset}")


def test_the_ceiling_kernels_compute_a_matmul_and_a_convolution_and_count_their_flops(monkeypatch):
    monkeypatch.setitem(bench.CEILING_MATMUL, "cpu", 64)
    monkeypatch.setitem(bench.CEILING_CONV, "cpu", (2, 8, 5))
    matmul, conv = bench.ceiling_steps(torch.device("cpu"), torch.float32)
    assert matmul() == 2 * 64 ** 3
    a, b = matmul.operands
    assert a.shape == b.shape == (64, 64) and a.dtype == torch.float32 and not torch.equal(a, b)
    torch.testing.assert_close(matmul.out, (a.double() @ b.double()).float())
    assert conv() == 2 * 2 * 8 * 8 * 9 * 5 * 5           # batch x out x in x 3 x 3 x positions, a MAC 2 FLOPs
    x, w = conv.operands
    assert x.shape == (2, 8, 5, 5) and w.shape == (8, 8, 3, 3) and x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(conv.out, F.conv2d(x.double(), w.double(), padding=1).float())
    assert all(k.operands[0].dtype == torch.bfloat16 for k in bench.ceiling_steps(torch.device("cpu"), torch.bfloat16))
    # interleaved turns FLOPs per step into FLOP/s
    rates = bench.interleaved([matmul, conv], steps=2, window=1, warmup=0, device=torch.device("cpu"))
    assert len(rates) == 2 and min(rates) > 0


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_classifier_bench_json_fields_flops_and_threads(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "budgetvision", "bench", "--preset", "mnist-lenet", *SMOKE,
                           "--json", "--threads", "2", "--out", str(tmp_path)], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    _check_row(row, "mnist-lenet", "classify")
    assert row["threads"] == 2 and "--threads 2" in row["command"]   # set in the process, over $OMP_NUM_THREADS
    assert row["batch_size"] == 64 and row["sampling_images_per_s"] is None and row["sampler"] is None
    shares = row["step_shares"]   # the objective marks its forward, optimizer_step backward and update
    assert set(shares) == {"forward", "backward", "optimizer", "outside"} and sum(shares.values()) == pytest.approx(1)
    assert min(shares["forward"], shares["backward"], shares["optimizer"]) > 0

    # The same network's forward and backward at batch 1, counted here without the bench's code.
    cfg = resolve("mnist-lenet", dataset="digits")
    spec = shape_spec(cfg)
    torch.manual_seed(0)
    net = build_objective(cfg, spec).network
    x, y = torch.rand(1, spec.channels, spec.image_size, spec.image_size), torch.tensor([3])
    assert _flops(lambda: F.cross_entropy(net(x), y).backward()) == LENET_FLOPS
    assert row["gflop_per_image"] == LENET_FLOPS / 1e9

    (path,) = tmp_path.glob("*.json")
    assert path.name == "mnist-lenet--" + bench._slug(row["device_name"]) + "--digits.json"
    assert bench.load_rows(tmp_path) == [row]


def test_generator_bench_samples_and_counts_the_denoisers_passes(tmp_path, capsys):
    code = main(["bench", "--preset", "cifar100-vdiffusion", *SMOKE, "--json", "--out", str(tmp_path),
                 "--set", "train.batch_size=4", "objective.sample_steps=2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (row,) = json.loads(out)
    _check_row(row, "cifar100-vdiffusion", "generate")
    assert row["batch_size"] == 4 and row["threads"] == torch.get_num_threads()
    assert row["sampling_images_per_s"] > 0 and row["sampler"] == "ddpm, 2 steps" and row["samples"] == 2
    rates = row["sampling_rates"]   # the recipe's sampler first, then the fast ones eval --sampler offers
    assert list(rates) == ["ddpm, 2 steps", "ddim, 50 steps", "dpmpp2m, 25 steps"] and min(rates.values()) > 0
    assert rates["ddpm, 2 steps"] == row["sampling_images_per_s"]
    assert "(ddim, 50 steps)" in bench.format_markdown([row])
    assert "--set train.batch_size=4 objective.sample_steps=2" in row["command"]

    cfg = resolve("cifar100-vdiffusion", dataset="digits")
    spec = shape_spec(cfg)
    objective = build_objective(cfg, spec).train()
    x, y = torch.rand(1, spec.channels, spec.image_size, spec.image_size) * 2 - 1, torch.tensor([3])
    assert _flops(lambda: objective.loss(x, y).backward()) == VDIFFUSION_FLOPS
    assert row["gflop_per_image"] == VDIFFUSION_FLOPS / 1e9

    assert bench.load_rows(tmp_path) == [row]
    table = bench.readme_section([row])
    for text in ("| cifar100-vdiffusion | digits | 4 |", row["device_name"], row["torch"], f"`{row['command']}`"):
        assert text in table


def test_threads_sets_torchs_thread_count_and_defaults_to_omp_num_threads():
    def dry_run(*extra, omp="2"):
        env = {**os.environ, "OMP_NUM_THREADS": omp}
        proc = subprocess.run([sys.executable, "-m", "budgetvision", "train", "--preset", "mnist-lenet", "--dry-run",
                               *extra], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "CPU threads: 3;" in dry_run("--threads", "3")
    assert "CPU threads: 2;" in dry_run()


@pytest.mark.parametrize("argv, words", [
    (["bench"], "needs one of --preset NAME and --all"),
    (["bench", "--preset", "mnist-lenet", "--all"], "needs one of --preset NAME and --all"),
    (["bench", "--preset", "nope"], "unknown preset 'nope'"),
    (["bench", "--preset", "mnist-lenet", "--steps", "0"], "--steps, --window and --samples >= 1"),
    (["bench", "--preset", "mnist-lenet", "--threads", "0"], "--threads must be >= 1"),
    (["bench", "--preset", "mnist-lenet", "--dataset", "folder:/does/not/exist"], "does/not/exist"),
    (["bench", "--all", "--dataset", "folder:/does/not/exist"], "--dataset digits needs no download"),
    (["train", "--preset", "mnist-lenet", "--threads", "-1", "--dry-run"], "--threads must be >= 1"),
])
def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, argv, words):
    out = tmp_path / "speed"
    code = main(argv + (["--out", str(out), "--no-progress"] if argv[0] == "bench" else []))
    _, err = capsys.readouterr()
    assert code == 2 and words in err.splitlines()[-1], err
    skipped = len(PRESETS) if argv[:2] == ["bench", "--all"] else 0   # --all names each preset it skips
    assert err.count("\n") == 1 + skipped, err
    assert not out.exists()


def test_a_foreign_file_among_the_speed_results_is_refused(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"format": "budgetvision-result-1"}))
    with pytest.raises(BudgetVisionError, match="not a budgetvision speed result"):
        bench.load_rows(tmp_path)


def test_the_text_table_names_every_data_set_whole():
    rows = bench.load_rows(REPO_RESULTS / "speed")
    if not rows:
        pytest.skip("no speed result is committed")
    lines = bench.format_text(rows).splitlines()
    end = lines[0].index("batch") + len("batch")            # the batch column, right-aligned under its head
    for row, line in zip(rows, lines[2:]):
        assert line.split()[:2] == [row["preset"], row["dataset"]], line
        assert line[:end].endswith(f" {row['batch_size']}") and line[end] == " ", line


def test_readme_speed_section_is_generated_from_the_committed_files():
    """No hand-written speed: the speed section (docs/speed.md, linked from the README) is
    bench.readme_section of benchmarks/results/speed/, and says so when nothing has been measured there."""
    page = (REPO_RESULTS.parents[1] / "docs" / "speed.md").read_text()
    start, end = "<!-- speed:start -->\n", "<!-- speed:end -->"
    assert start in page and end in page, "docs/speed.md lost its speed markers"
    section = page.split(start, 1)[1].split(end, 1)[0]
    rows = bench.load_rows(REPO_RESULTS / "speed")
    assert section == bench.readme_section(rows), "docs/speed.md is stale: run benchmarks/update_readme.py"
    if not rows:
        assert "No speed result is committed yet" in section


def test_a_row_with_overrides_sits_beside_the_presets_own_row_and_a_new_one_replaces_the_old(tmp_path):
    def row(overrides: list[str], rate: float) -> dict:
        return {"preset": "mnist-lenet", "device_name": "AMD EPYC, 2 cores", "dataset": "mnist",
                "overrides": overrides, "tool_images_per_s": rate}
    own, bf16 = bench.write_rows([row([], 1.0), row(["train.cpu_amp=true"], 2.0)], tmp_path)
    assert own.name == "mnist-lenet--amd-epyc-2-cores--mnist.json"
    assert bf16.name == "mnist-lenet--amd-epyc-2-cores--mnist--train-cpu-amp-true.json"
    assert bench.write_rows([row([], 3.0)], tmp_path) == [own]
    assert sorted(json.loads(p.read_text())["tool_images_per_s"] for p in tmp_path.iterdir()) == [2.0, 3.0]


def test_a_onecycle_preset_benches_through_its_profiled_window(tmp_path):
    """OneCycle refuses a step past its end: the schedule spans the timed steps and the profiled window."""
    assert main(["bench", "--preset", "cifar100-speedrun-convnet", *SMOKE, "--out", str(tmp_path)]) == 0


def test_step_shares_split_a_step_by_its_profiler_ranges():
    """A step of 30 ms in the forward range, 10 ms in the optimiser's and 20 ms of its own: shares
    1/2, 0, 1/6 and 1/3 (sleeps: the ranges' CPU time is their wall time here)."""
    from budgetvision.objectives.base import FORWARD, OPTIMIZER

    def step():
        with torch.profiler.record_function(FORWARD):
            time.sleep(0.03)
        with torch.profiler.record_function(OPTIMIZER):
            time.sleep(0.01)
        time.sleep(0.02)

    shares = bench.step_shares(step, 4, torch.device("cpu"))
    assert set(shares) == {"forward", "backward", "optimizer", "outside"}
    assert shares["backward"] == 0.0
    assert shares["forward"] == pytest.approx(0.5, abs=0.06)
    assert shares["optimizer"] == pytest.approx(1 / 6, abs=0.04)
    assert shares["outside"] == pytest.approx(1 / 3, abs=0.06)
    # A step with no range at all (PCA's closed form) has no split, not 100 % "outside".
    assert bench.step_shares(lambda: time.sleep(0.001), 2, torch.device("cpu")) is None


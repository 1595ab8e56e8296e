"""The run layer: run folders (one per run, a sub-folder per seed), training every seed of a run,
opening a trained seed once for everything that reads it (`open_seed`), and run-level evaluation and
sampling, which use the pure metrics of `evaluation/` and the plots of `report/`."""
from .evaluate import (draw_timed, eval_file, evaluate_generator, evaluate_run, fid_reference, open_judge,
                       refuse_generator_request)
from .folder import (RUN_FORMAT, OpenedSeed, finish_run, mean_std, new_run_dir, open_run, open_seed,
                     read_metrics, recorded_data_root, seed_dirs, start_run, summary_line, train_seeds,
                     warnings_of)
from .generate import (class_labels, nearest_training_images, open_generator, parse_seeds, sample,
                       sampling_overrides, to_uint8)

__all__ = ["RUN_FORMAT", "OpenedSeed", "class_labels", "draw_timed", "eval_file", "evaluate_generator", "evaluate_run",
           "fid_reference", "finish_run", "mean_std", "nearest_training_images", "new_run_dir", "open_generator",
           "open_judge", "open_run", "open_seed", "parse_seeds", "read_metrics", "recorded_data_root", "refuse_generator_request", "sample", "sampling_overrides",
           "seed_dirs", "start_run", "summary_line", "to_uint8", "train_seeds", "warnings_of"]

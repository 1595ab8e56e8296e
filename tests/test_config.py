import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budgetvision.config import RunConfig, apply_overrides, from_dict, load_config
from budgetvision.errors import ConfigError
from budgetvision.presets import PRESETS, get_preset


def test_overrides_apply_with_types():
    cfg = apply_overrides(RunConfig(), ["optim.lr=2e-3", "train.batch_size=32", "train.amp=false",
                                        "optim.betas=0.5,0.99", "data.augment.hflip=0.5"])
    assert cfg.optim.lr == 2e-3 and cfg.train.batch_size == 32 and cfg.train.amp is False
    assert cfg.optim.betas == (0.5, 0.99) and cfg.data.augment.hflip == 0.5


@pytest.mark.parametrize("override, words", [
    ("optim.learning_rate=1", "unknown config key 'optim.learning_rate'"),
    ("nosuch.lr=1", "unknown config key 'nosuch.lr'"),
    ("train.batch_size=1.5", "must be an integer"),
    ("train.batch_size=abc", "must be an integer"),
    ("optim.lr=fast", "must be a number"),
    ("optim.lr=-1", "optim.lr must be a positive number"),
    ("optim.lr=nan", "must be finite"),
    ("train.steps=0", "train.steps must be >= 1"),
    ("train.amp=maybe", "must be true or false"),
    ("optim.betas=0.9", "needs 2 values"),
    ("optim.name=lion", "optim.name must be one of"),
    ("data.val_fraction=1.5", "data.val_fraction must be in [0, 1)"),
    ("data.val_fraction=-0.1", "data.val_fraction must be in [0, 1)"),
    ("model.capacity=0", "model.capacity must be >= 1, got 0"),
    ("model.depth=-1", "model.depth must be >= 1, got -1"),
    ("model.depth=1.5", "model.depth must be an integer"),
    ("optim", "malformed override"),
    ("=3", "empty key"),
    ("optim=3", "is a section"),
    ("optim.lr.x=3", "has no sub-keys"),
])
def test_bad_overrides_fail_with_one_line(override, words):
    with pytest.raises(ConfigError) as e:
        apply_overrides(RunConfig(), [override])
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_json_round_trip(name, tmp_path):
    cfg = get_preset(name).config
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    assert load_config(path) == cfg


def test_unknown_key_in_json_fails(tmp_path):
    data = RunConfig().to_dict()
    data["train"]["warp"] = 9
    with pytest.raises(ConfigError, match="unknown config key 'train.warp'"):
        from_dict(RunConfig, data)


def test_corrupt_config_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt config file"):
        load_config(path)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        get_preset("nope")


KEYS = ["optim.lr", "train.batch_size", "train.steps", "train.amp", "optim.betas", "data.name",
        "train.label_smoothing", "nothing.here", "optim", ""]


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(KEYS) | st.text(max_size=12), value=st.text(max_size=12))
def test_override_parsing_never_crashes(key, value):
    """Any override either applies to a valid config or raises ConfigError; nothing else escapes."""
    try:
        cfg = apply_overrides(RunConfig(), [f"{key}={value}"])
    except ConfigError as e:
        assert "\n" not in str(e)
    else:
        assert json.loads(cfg.to_json())  # still a valid, serialisable config


def test_a_resolved_config_shows_only_its_own_objectives_fields():
    classifier = get_preset("mnist-lenet").config.to_dict()["objective"]
    gan = get_preset("mnist-ccgan").config.to_dict()["objective"]
    ddpm = get_preset("cifar100-ddpm").config.to_dict()["objective"]
    assert classifier == {"name": "classification"}
    assert set(gan) == {"name", "interpolation", "interpolation_labels", "gan_loss", "adaptive_weighting",
                        "real_label", "d_steps", "r1_gamma", "diffaugment", "vbn"}
    assert "timesteps" in ddpm and "gan_loss" not in ddpm and "components" not in ddpm
    assert list(ddpm)[0] == "name"
    with pytest.raises(ConfigError, match="unknown config key 'objective.gan_loss'"):
        apply_overrides(get_preset("cifar100-ddpm").config, ["objective.gan_loss=hinge"])
    with pytest.raises(ConfigError, match="cannot be overridden"):
        apply_overrides(get_preset("mnist-ccgan").config, ["objective.name=ddpm"])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_task_follows_from_the_objective_and_every_model_is_registered(name):
    from budgetvision.models import model_names

    cfg = get_preset(name).config
    assert cfg.task == ("classify" if cfg.objective.name == "classification" else "generate")
    assert "task" not in cfg.to_dict()
    assert cfg.model.name in model_names()
    assert not cfg.model.discriminator or cfg.model.discriminator in model_names()
    assert from_dict(RunConfig, json.loads(cfg.to_json())) == cfg


def test_an_unknown_objective_in_a_config_file_fails_with_one_line():
    data = json.loads(get_preset("mnist-ccgan").config.to_json())
    data["objective"]["name"] = "flow"
    with pytest.raises(ConfigError, match="objective.name must be one of"):
        from_dict(RunConfig, data)


# The papers that say they trained on the whole training split, in their words (presets.py cites each).
WHOLE_SPLIT = {
    "cifar100-bottleneck": "can be improved by introducing 3rd validation set",   # Zavileiskii: it had none
    "cifar100-ddpm": "It was trained on the entire dataset.",                      # Zavileiskii
    "cifar100-aw-sngan": "on the full CIFAR-100 dataset",                          # Jalil
    "cifar100-aw-sngan-uncond": "on the full CIFAR-100 dataset",                   # Jalil
    "mnist-lenet": "60,000 examples of handwritten digits for training phase",     # Rzayev
    "mnist-dcgan": "60,000 examples of handwritten digits for training phase",
    "mnist-ccgan": "60,000 examples of handwritten digits for training phase",
    "mnist-pca": "all images belonging to a particular label",
}


# Our own generators choose nothing on a validation split, so they train on the whole of it, as the
# seed-004 generators they are compared with do; our classifiers choose on validation and keep it.
OURS_WHOLE_SPLIT = {"mnist-projection-gan", "mnist-guided-diffusion", "cifar100-guided-diffusion"}


def test_presets_hold_out_validation_except_where_the_paper_trained_on_the_whole_split():
    from pathlib import Path

    seeds = Path(__file__).resolve().parents[2] / "shared" / "seeds"
    text = " ".join(" ".join(f.read_text().split()) for f in seeds.glob("*.txt")) if seeds.is_dir() else None
    for name, p in PRESETS.items():
        whole = p.config.data.val_fraction == 0
        if p.origin != "paper":
            assert whole == (name in OURS_WHOLE_SPLIT), name
            continue
        assert whole == (name in WHOLE_SPLIT), name
        if whole and text is not None:
            assert WHOLE_SPLIT[name] in text, name   # the words the choice rests on are the paper's
    assert apply_overrides(get_preset("mnist-lenet").config, ["data.val_fraction=0.1"]).data.val_fraction == 0.1


@pytest.mark.parametrize("name, epochs", [("mnist-lenet", 5), ("mnist-dcgan", 25), ("mnist-ccgan", 25),
                                          ("mnist-pca", 1)])
def test_seed004_presets_train_the_epochs_the_paper_says_over_the_images_they_train_on(name, epochs):
    """Rzayev counts epochs of MNIST's 60,000 training images; a preset's steps x batch must be that
    many epochs of the images it actually trains on (those left after any validation hold-out),
    within one batch per epoch (Keras counts a last partial batch)."""
    cfg = get_preset(name).config
    images = round(60_000 * (1 - cfg.data.val_fraction))
    assert abs(cfg.train.steps * cfg.train.batch_size - epochs * images) <= epochs * cfg.train.batch_size


def test_each_papers_interpolation_is_its_presets_default():
    def interp(name):
        o = get_preset(name).config.objective
        return o.interpolation, o.interpolation_labels

    assert interp("cifar100-aw-sngan") == ("lerp", "blend")           # Jalil: "linear interpolations"
    assert interp("cifar100-aw-sngan-uncond")[0] == "lerp"
    assert interp("cifar100-ddpm") == ("lerp", "nearest")             # Zavileiskii: "Label of the closer image"
    assert interp("cifar100-vdiffusion") == ("slerp", "blend")        # the anonymous paper: "spherically interpolate"
    with pytest.raises(ConfigError, match="objective.interpolation must be one of slerp, lerp"):
        apply_overrides(get_preset("mnist-pca").config, ["objective.interpolation=cubic"])
    with pytest.raises(ConfigError, match="objective.vbn must be one of off, epoch, batch"):
        apply_overrides(get_preset("mnist-dcgan").config, ["objective.vbn=sometimes"])


def test_seed004_capacity_and_depth_are_the_papers_best_and_other_presets_keep_one():
    """Rzayev's grid is F, D in 1..3; F=D=1 was best for both its GANs (presets.py cites it).
    Every other network takes neither, so every other preset stays at 1."""
    for name, p in PRESETS.items():
        assert (p.config.model.capacity, p.config.model.depth) == (1, 1), name
    cfg = apply_overrides(get_preset("mnist-ccgan").config, ["model.capacity=3", "model.depth=2"])
    assert (cfg.model.capacity, cfg.model.depth) == (3, 2)


def test_a_config_file_from_before_capacity_and_depth_loads_as_one(tmp_path):
    """Run folders written before model.capacity / model.depth existed built F = D = 1 (the
    builders' defaults then); they open (to evaluate and resume) as exactly that."""
    cfg = get_preset("mnist-ccgan").config
    old = cfg.to_dict()
    del old["model"]["capacity"], old["model"]["depth"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    assert load_config(path) == cfg


@pytest.mark.parametrize("name", ["cifar100-speedrun-convnet", "mnist-ccgan"])
def test_a_config_file_from_before_the_objective_sections_still_loads(name, tmp_path):
    """Run folders written before objective sections held a top-level `task` and every objective's
    keys in one `objective`; they open (to evaluate and resume) as the section their name picks."""
    cfg = get_preset(name).config
    old = cfg.to_dict()
    old["task"] = cfg.task
    old["objective"] = {"gan_loss": "bce", "adaptive_weighting": False, "real_label": 1.0, "d_steps": 1,
                        "schedule": "linear", "timesteps": 1000, "cond_drop": 0.0, "components": 64,
                        **old["objective"]}   # every old key; the objective's own values win
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    assert load_config(path) == cfg
    with pytest.raises(ConfigError, match="unknown config key 'task'"):   # partial dicts stay strict
        from_dict(RunConfig, old)

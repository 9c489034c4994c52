"""The training loop: real accuracy on MNIST, exact resume, clear failures, plug-ins, schedules."""

import math
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hwsim.config import METHOD_NAMESPACES as HWSIM_NAMESPACES
from models import create_model
from models.checkpoint import build_model, load_checkpoint, new_checkpoint, save_checkpoint
from models.plugins import GRAD_HOOKS, LOSSES, lookup, register_grad_hook, register_loss
from models.train import (
    METHOD_NAMESPACES,
    TrainingDiverged,
    lr_at,
    param_groups,
    resolve_config,
    train,
)

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


class Interrupted(RuntimeError):
    pass


if "test_interrupt" not in GRAD_HOOKS:
    @register_grad_hook("test_interrupt")
    def _interrupt(model, at_step: int):
        """Simulates a killed job: raises once ``at_step`` optimizer steps have run."""
        def hook(step):
            if step == at_step:
                raise Interrupted(f"stopped at step {step}")
        return hook

if "test_nan" not in LOSSES:
    @register_loss("test_nan")
    def _nan_loss(model, from_step: int):
        calls = iter(range(10**9))

        def term(inputs, logits, targets):
            return logits.sum() * (math.nan if next(calls) >= from_step else 0.0)
        return term


def tiny(out_dir: Path, epochs: int = 3, **sections) -> dict:
    """Digits on ResNet-20 at width 0.25: four steps an epoch, a second or two per run."""
    cfg = {"model": {"name": "resnet20", "width": 0.25},
           "data": {"name": "digits", "train_subset": 256, "test_subset": 128},
           "optimizer": {"lr": 0.05},
           "train": {"epochs": epochs, "batch_size": 64, "out_dir": str(out_dir), "threads": 1}}
    for name, value in sections.items():
        cfg[name] = {**cfg.get(name, {}), **value}
    return cfg


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"MNIST test files not found at {MNIST_DIR}")
def test_narrow_resnet20_learns_mnist_to_95_percent_within_a_minute(tmp_path):
    cfg = {"model": {"name": "resnet20", "width": 0.25},
           "data": {"name": "mnist", "root": str(MNIST_DIR), "split": "test_only"},
           "optimizer": {"name": "sgd", "lr": 0.1},
           "train": {"epochs": 2, "batch_size": 128, "out_dir": str(tmp_path), "threads": 1}}
    started = time.perf_counter()
    metrics = train(cfg, progress=False)
    wall_s = time.perf_counter() - started
    assert metrics["test_acc"] >= 0.95, metrics
    assert wall_s < 60, f"took {wall_s:.1f} s"
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_resume_after_an_interruption_gives_bit_identical_weights(tmp_path):
    whole = train(tiny(tmp_path / "whole"), progress=False)
    with pytest.raises(Interrupted):
        train(tiny(tmp_path / "cut", grad_hooks={"test_interrupt": {"at_step": 6}}),
              progress=False)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    resumed = train(tiny(tmp_path / "cut"), resume=True, progress=False)
    a = load_checkpoint(whole["checkpoint"])
    b = load_checkpoint(resumed["checkpoint"])
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    assert whole["test_acc"] == resumed["test_acc"] and a["step"] == b["step"] == 12
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_same_seed_same_weights_and_other_seed_differs(tmp_path):
    runs = [train(tiny(tmp_path / name, epochs=1, train={"seed": seed}), progress=False)
            for name, seed in (("a", 1), ("b", 1), ("c", 2))]
    weights = [load_checkpoint(r["checkpoint"])["state_dict"]["fc.weight"] for r in runs]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny(tmp_path, losses={"test_nan": {"from_step": 5}})
    with pytest.raises(TrainingDiverged, match=r"diverged: loss nan at epoch 2 step 5.*last "
                                               r"good checkpoint: .*last\.pt"):
        train(cfg, progress=False)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values()
               if t.is_floating_point())


def test_corrupt_foreign_and_mismatched_checkpoints_are_one_line_errors(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pt: not a readable checkpoint"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not an hwsim checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        train(tiny(tmp_path / "nothing"), resume=True, progress=False)

    metrics = train(tiny(tmp_path / "run", epochs=1), progress=False)
    with pytest.raises(ValueError, match="resume needs the same model"):
        train(tiny(tmp_path / "run", model={"width": 0.5}), resume=True, progress=False)
    ckpt = load_checkpoint(metrics["checkpoint"])
    ckpt["model_kwargs"] = {**ckpt["model_kwargs"], "width": 0.5}
    with pytest.raises(ValueError, match=r"weights do not match model resnet20.*shape"):
        build_model(ckpt, "edited.pt")
    model = build_model(load_checkpoint(metrics["checkpoint"]), metrics["checkpoint"])
    assert model.fc.in_features == 16  # width 0.25 of 64, rebuilt from the stored kwargs


def test_checkpoint_holds_only_tensors_and_primitives(tmp_path):
    metrics = train(tiny(tmp_path, epochs=1), progress=False)
    ckpt = torch.load(metrics["checkpoint"], weights_only=True)
    assert ckpt["model_name"] == "resnet20" and ckpt["input_shape"] == [1, 16, 16]
    assert ckpt["config"]["train"]["epochs"] == 1 and "optimizer" in ckpt
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "metrics.jsonl").is_file()


@pytest.mark.parametrize("config, message", [
    ({"trian": {}}, "config: unknown section 'trian'; allowed: model, data"),
    ({"train": {"epoch": 3}}, "train.epoch: unknown key; allowed: epochs, batch_size"),
    ({"train": {"epochs": "3"}}, "train.epochs: must be int, got '3'"),
    ({"train": {"epochs": 0}}, "train.epochs: must be > 0"),
    ({"optimizer": {"name": "lamb"}}, "optimizer.name: 'lamb' is not one of sgd, adam, radam"),
    ({"optimizer": {"nesterov": 1}}, "optimizer.nesterov: must be bool"),
    ({"losses": {"kd2": {}}}, "losses.kd2: unknown loss 'kd2'"),
    ({"model": {"width": 0.5}}, "model: a mapping with at least 'name'"),
])
def test_bad_config_is_a_one_line_error_naming_the_key(config, message):
    base = {"model": {"name": "resnet20"}}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        resolve_config({**base, **config} if "model" not in config else config)


def test_model_arguments_must_agree_with_the_data(tmp_path):
    with pytest.raises(ValueError, match=r"model.in_channels: 3 does not match data digits \(1\)"):
        train(tiny(tmp_path, model={"in_channels": 3}), progress=False)


def test_method_namespaces_match_hwsim_config():
    assert METHOD_NAMESPACES == HWSIM_NAMESPACES


def test_lr_schedules_are_pure_functions_of_the_step():
    cosine = {"name": "cosine", "warmup_epochs": 0, "min_lr": 0.0, "milestones": [],
              "gamma": 0.1}
    assert lr_at(0, 10, 4, 0.1, cosine) == 0.1
    assert lr_at(20, 10, 4, 0.1, cosine) == pytest.approx(0.05)
    assert lr_at(39, 10, 4, 0.1, cosine) < 0.001
    warm = {**cosine, "warmup_epochs": 1}
    assert [lr_at(s, 10, 4, 0.1, warm) for s in (0, 9)] == pytest.approx([0.01, 0.1])
    step = {**cosine, "name": "step", "milestones": [2, 3]}
    assert [lr_at(s, 10, 4, 0.1, step) for s in (19, 20, 30)] == pytest.approx(
        [0.1, 0.01, 0.001])
    exponential = {**cosine, "name": "exponential", "gamma": 0.5}
    assert lr_at(25, 10, 4, 0.1, exponential) == pytest.approx(0.025)


def test_weight_decay_skips_parameters_named_in_no_decay():
    model = create_model("resnet20", width=0.25)
    decay, plain = param_groups(model, 5e-4, ["bn", "bias"])
    names = {id(p): n for n, p in model.named_parameters()}
    assert all("conv" in names[id(p)] or names[id(p)] == "fc.weight" for p in decay["params"])
    assert {names[id(p)] for p in plain["params"]} >= {"bn1.weight", "bn1.bias", "fc.bias"}
    assert plain["weight_decay"] == 0.0 and decay["weight_decay"] == 5e-4


def test_kd_term_is_the_classic_mix_and_trains(tmp_path):
    teacher = create_model("resnet20", width=0.25, in_channels=1)
    path = tmp_path / "teacher.pt"
    save_checkpoint(path, new_checkpoint("resnet20", {"width": 0.25, "in_channels": 1}, teacher,
                                         {}, (1, 16, 16)))
    term = lookup("loss", "kd")(teacher, teacher=str(path), T=3.0, alpha=0.9)
    teacher.eval()
    inputs, targets = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    logits = teacher(inputs)
    ce = F.cross_entropy(logits, targets)
    # Student == teacher: the KL part vanishes and the total is (1 - alpha) * CE.
    assert (ce + term(inputs, logits, targets)).item() == pytest.approx(0.1 * ce.item(), rel=1e-4)
    metrics = train(tiny(tmp_path / "kd", epochs=1,
                         losses={"kd": {"teacher": str(path), "T": 3.0, "alpha": 0.9}}),
                    progress=False)
    assert math.isfinite(metrics["train_loss"])

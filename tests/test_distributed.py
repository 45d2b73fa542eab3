"""Training under torchrun with 2 CPU processes matches one process with the same global batch."""

import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file


def _folder(tmp_path, photos):
    data = tmp_path / "data"
    data.mkdir()
    names = {"chelsea": "cat_animal", "coffee": "coffee_cup", "astronaut": "person_space", "rocket": "rocket_sky",
             "horse": "animal_horse", "camera": "person_camera"}
    for copy in range(2):
        for i, (photo, tags) in enumerate(names.items()):
            shutil.copy(photos[photo], data / f"{copy}{i}-{tags}.jpg")
    return data


def _train(tmp_path, data, out, method, processes, *extra):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    command = [*launcher, "-m", "tagrank.cli", "train", "folder", "--root", str(data), "--out", str(out),
               "--method", method, "--epochs", "3", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache"),
               "--no-progress", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")
def test_two_processes_match_one(tmp_path, photos):
    data = _folder(tmp_path, photos)
    _train(tmp_path, data, tmp_path / "one", "bce", 1)  # also fills the feature cache
    two = _train(tmp_path, data, tmp_path / "two", "bce", 2)
    assert two.stdout.count("trained bce") == 1  # one process reports
    one_w, two_w = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert one_w.keys() == two_w.keys()
    for name in one_w:  # BCE draws nothing at random: the same gradients, summed across the two shares
        assert torch.allclose(one_w[name], two_w[name], atol=1e-5), name
    # A method with sampled negatives (each process draws its own) trains, and an interrupted run resumes
    # exactly: 2 epochs then --resume to 3 equals 3 epochs (a constant learning rate, so the epoch count
    # does not change the schedule).
    config = tmp_path / "constant.toml"
    config.write_text('[method]\nname = "transform"\nk = 4\n\n[train]\nlr_schedule = "constant"\n')
    _train(tmp_path, data, tmp_path / "full", "transform", 2, "--config", str(config))
    _train(tmp_path, data, tmp_path / "part", "transform", 2, "--config", str(config), "--epochs", "2")
    _train(tmp_path, data, tmp_path / "part", "transform", 2, "--config", str(config), "--resume")
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [
        "checkpoint.safetensors", "model.json", "model.safetensors", "train.jsonl"]
    full, resumed = (load_file(tmp_path / run / "checkpoint.safetensors") for run in ("full", "part"))
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)

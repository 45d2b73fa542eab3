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


def _train(tmp_path, data, out, method, processes):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    command = [*launcher, "-m", "tagrank.cli", "train", "folder", "--root", str(data), "--out", str(out),
               "--method", method, "--epochs", "3", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache"),
               "--no-progress"]
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
    # A method with sampled negatives trains too (each process draws its own), and the run resumes.
    _train(tmp_path, data, tmp_path / "transform", "transform", 2)
    assert (tmp_path / "transform" / "model.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "transform").iterdir()) == [
        "checkpoint.safetensors", "model.json", "model.safetensors", "train.jsonl"]

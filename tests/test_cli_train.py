import json
import shutil


def test_train_folder_dataset_end_to_end(cli, photos, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    names = {"chelsea": "cat_animal", "coffee": "coffee_cup", "astronaut": "person_space", "rocket": "rocket_sky",
             "horse": "animal_horse", "camera": "person_camera"}
    for i, (photo, tags) in enumerate(names.items()):
        shutil.copy(photos[photo], data / f"{i}-{tags}.jpg")
    (data / "9-broken.jpg").write_bytes(b"garbage")
    out = tmp_path / "run"
    result = cli("train", "folder", "--root", data, "--out", out, "--method", "transform", "--epochs", "3",
                 "--k", "8", "--cache-dir", tmp_path / "cache", "--no-progress")
    assert result.code == 0, result
    assert "9-broken.jpg" in result.err and "trained transform" in result.out
    meta = json.loads((out / "model.json").read_text())
    assert meta["options"]["k"] == 8 and meta["backbone"]["name"] == "lite0" and "broken" not in meta["labels"]
    assert len((out / "train.jsonl").read_text().splitlines()) == 4


def test_train_bad_inputs(cli, tmp_path):
    for args, needle in [
        (("train", "corel5k", "--root", tmp_path / "nope", "--out", tmp_path / "o"), "dataset root not found"),
        (("train", "imagenet", "--root", tmp_path, "--out", tmp_path / "o"), "unknown dataset"),
        (("train", "folder", "--root", tmp_path, "--out", tmp_path / "o", "--method", "conse"), "needs no training"),
        (("train", "folder", "--root", tmp_path, "--out", tmp_path / "o", "--epochs", "0"), "--epochs"),
        (("train", "folder", "--root", tmp_path, "--out", tmp_path / "o", "--method", "bce", "--k", "5"), "--k"),
    ]:
        result = cli(*args)
        assert result.code == 2 and needle in result.err and result.err.count("\n") == 1, result


def test_finetune_trains_the_cnn_and_rank_uses_it(cli, photos, tmp_path):
    import torch

    from tagrank.images.backbone import Backbone
    from tagrank.model import TaggingModel
    from tagrank.tagger import Tagger

    data = tmp_path / "data"
    data.mkdir()
    for i, (photo, tags) in enumerate({"chelsea": "cat", "coffee": "coffee", "astronaut": "person",
                                       "rocket": "sky", "horse": "horse", "camera": "person"}.items()):
        shutil.copy(photos[photo], data / f"{i}-{tags}.jpg")
    out = tmp_path / "run"
    result = cli("train", "folder", "--root", data, "--out", out, "--finetune", "--epochs", "2", "--k", "4",
                 "--lr", "1e-3", "--device", "cpu", "--cache-dir", tmp_path / "cache", "--no-progress")
    assert result.code == 0, result
    model = TaggingModel.load(out)
    assert model.meta["backbone"]["finetuned"] and model.backbone_state is not None
    pretrained = Backbone("lite0").state_dict()
    changed = [k for k, v in model.backbone_state.items() if v.is_floating_point() and not torch.equal(v, pretrained[k])]
    assert changed  # the CNN itself was trained
    tagger = Tagger.load(out)
    assert tagger.backbone.signature.startswith("lite0-") and "finetuned-" in tagger.backbone.signature
    assert torch.equal(tagger.backbone.state_dict()[changed[0]], model.backbone_state[changed[0]])
    ranked = cli("rank", data / "0-cat.jpg", "--model", out, "--format", "json")
    assert ranked.code == 0 and json.loads(ranked.out)[0]["tags"]
    resumed = cli("train", "folder", "--root", data, "--out", out, "--finetune", "--epochs", "3", "--k", "4",
                  "--lr", "1e-3", "--device", "cpu", "--cache-dir", tmp_path / "cache", "--no-progress", "--resume")
    assert resumed.code == 0, resumed
    assert len((out / "train.jsonl").read_text().splitlines()) == 4

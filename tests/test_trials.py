from tagrank.training.trials import TrialLog


def test_trial_log_reruns_only_new_or_changed_trials(tmp_path):
    path = tmp_path / "t.jsonl"
    trials = [("a", {"x": 1}), ("b", "transform", {"y": 2})]
    log = TrialLog(path, ["a", "b"])
    assert log.wanted(trials) == trials
    log.record({"name": "b", "settings": {"y": 2}, "score": 0.5})
    log.record({"name": "old", "settings": {}, "score": 0.1})
    again = TrialLog(path, ["a", "b"])
    assert again.wanted(trials) == [("a", {"x": 1})] and again.wanted(trials, only=["b"]) == [trials[1]]
    assert again.wanted([("b", "transform", {"y": 3})]) == [("b", "transform", {"y": 3})]  # settings changed
    assert [line.split('"')[3] for line in path.read_text().splitlines()] == ["old", "b"]  # unlisted first, none lost


def test_two_runs_of_a_script_keep_each_others_trials(tmp_path):
    path = tmp_path / "t.jsonl"
    first, second = TrialLog(path, ["a", "b"]), TrialLog(path, ["a", "b"])
    first.record({"name": "a", "settings": {}, "score": 1})
    second.record({"name": "b", "settings": {}, "score": 2})
    assert set(TrialLog(path, ["a", "b"]).done) == {"a", "b"}

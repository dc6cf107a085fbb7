"""Discovery of subjects and trials in the raw lab-data layout."""
import json

import pytest

from pipeline.errors import IngestError, ModelError
from pipeline.raw import discover, read_subject_info


def _subject(folder, **info):
    folder.mkdir(parents=True)
    base = {"mass_kg": 72.6, "height_m": 1.80, "sex": "F", "static_trial": "static"}
    base.update(info)
    (folder / "subject.json").write_text(json.dumps(base))
    return folder


def test_discovers_trials_ignores_companions_and_underscored_names(tmp_path):
    s = _subject(tmp_path / "S01")
    for name in ("static.c3d", "walk_01.trc", "walk_01_grf.mot", "jump.npz", "notes.txt"):
        (s / name).write_bytes(b"x")
    (s / "_truth").mkdir()
    (s / "_truth" / "walk.c3d").write_bytes(b"x")
    subjects, problems = discover(tmp_path)
    assert problems == []
    assert [t.trial for t in subjects[0].trials] == ["jump", "static", "walk_01"]
    walk = subjects[0].trials[-1]
    assert walk.grf_path == s / "walk_01_grf.mot"
    assert subjects[0].info["sex"] == "F"


def test_duplicate_trial_names_are_a_problem_not_a_crash(tmp_path):
    s = _subject(tmp_path / "S01")
    (s / "walk.c3d").write_bytes(b"x")
    (s / "walk.trc").write_bytes(b"x")
    (s / "squat.c3d").write_bytes(b"x")
    subjects, problems = discover(tmp_path)
    assert [t.trial for t in subjects[0].trials] == ["squat"]
    assert len(problems) == 1 and isinstance(problems[0], IngestError)
    assert "walk" in str(problems[0]) and problems[0].trial == "walk"


@pytest.mark.parametrize("info, expected", [
    ({"mass_kg": -3}, "mass_kg = -3"),
    ({"mass_kg": 7260}, "outside the plausible range"),
    ({"height_m": 180}, "height_m = 180"),
    ({"sex": "X"}, "sex 'X'"),
    ({"mass_kg": "heavy"}, "not a number"),
])
def test_absurd_subject_info_is_rejected_with_the_file_named(tmp_path, info, expected):
    folder = _subject(tmp_path / "S01", **info)
    with pytest.raises(ModelError, match=expected) as exc:
        read_subject_info(folder)
    assert str(folder / "subject.json") in str(exc.value)


def test_missing_subject_json_skips_that_subject_only(tmp_path):
    (tmp_path / "S00").mkdir()
    _subject(tmp_path / "S01")
    subjects, problems = discover(tmp_path)
    assert [s.subject for s in subjects] == ["S01"]
    assert "subject.json is missing" in str(problems[0])


def test_sex_words_are_normalised(tmp_path):
    assert read_subject_info(_subject(tmp_path / "a", sex="male"))["sex"] == "M"


@pytest.mark.parametrize("name, activity", [("walk_fast_01", "walking"), ("Static", "static"),
                                            ("sit_to_stand_02", "sit_to_stand"),
                                            ("squat_01", "squat"), ("trial7", "other")])
def test_activity_from_trial_name(name, activity):
    from pipeline.raw import infer_activity
    assert infer_activity(name) == activity

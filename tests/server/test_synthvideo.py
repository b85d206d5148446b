"""The scripted scene of real CUHK03 crops (``eval/synthvideo``) and one crossing through the server.

The scene is the held-out check of identity on video with re-entries and two cameras
(docs/quality.md, "Synthetic crossings from real crops"); these tests keep its generator honest
(same seed, same pictures; a person walking in is cut by the picture's edge in the truth as in the
picture) and check the one thing a household notices first at a crossing: two people who pass
each other stay two people, each with their own identity.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from eval.data import Split, load_split
from eval.realvideo.metrics import who
from eval.realvideo.replay import Memo
from eval.synthvideo import scene as scene_module
from eval.synthvideo.replay import label, replay
from eval.synthvideo.scene import WIDTH, Rendered, Truth, build, short_crossing
from eval.synthvideo.truth import label_frame


@pytest.fixture(scope="module")
def val(cuhk03_dir: Path) -> Split:
    return load_split("val", root=cuhk03_dir)


def test_the_same_seed_gives_the_same_scene_and_pictures(val: Split) -> None:
    a, b = build(3, val), build(3, val)
    assert [(w.person, w.camera, w.path, w.looks) for w in a.walks] == [
        (w.person, w.camera, w.path, w.looks) for w in b.walks
    ]
    assert {n: p.pid for n, p in a.people.items()} == {n: p.pid for n, p in b.people.items()}
    busy = next(k for k in range(a.frames) if len(a.render("hall", k).truths) >= 2)
    for camera, k in (("hall", busy), ("yard", a.frames // 2)):
        first, second = a.render(camera, k), b.render(camera, k)
        assert np.array_equal(first.image, second.image)
        assert first.truths == second.truths
    other = build(4, val)
    assert [w.path for w in other.walks] != [w.path for w in a.walks]
    # Every kind of event the scene promises is there.
    kinds = Counter(e.kind for e in a.events)
    for kind in ("crossing", "pair", "re-entry", "hand-over", "overlap", "return", "standing"):
        assert kinds[kind] >= 2, kind


def test_a_person_walking_in_is_cut_by_the_edge_in_the_truth(val: Split) -> None:
    scene = build(0, val)
    walk = next(w for w in scene.walks if w.path[0][1] < 0)  # enters from the left
    k = next(
        k
        for k in range(int(walk.start * 10), scene.frames)
        if any(t.person == walk.person for t in scene.render(walk.camera, k).truths)
    )
    rendered = scene.render(walk.camera, k)
    truth = next(t for t in rendered.truths if t.person == walk.person)
    assert truth.full[0] < 0 < truth.full[2]
    assert truth.box[0] == 0.0 and truth.box[2] == truth.full[2]
    assert 0.0 < truth.in_frame < 1.0
    assert truth.in_frame == pytest.approx(truth.box[2] / (truth.full[2] - truth.full[0]))


def test_a_box_over_two_people_is_nobody() -> None:
    owner = np.full((360, WIDTH), -1, np.int16)
    owner[100:300, 100:160] = 0
    owner[100:300, 160:220] = 1  # the second person, nearer, covers the first's right part
    truths = (
        Truth("a", "hall", 0, (100, 100, 180, 300), (100, 100, 180, 300), (100, 100, 160, 300),
              1.0, 0.25),
        Truth("b", "hall", 1, (160, 100, 220, 300), (160, 100, 220, 300), (160, 100, 220, 300),
              1.0, 0.0),
    )  # fmt: skip
    rendered = Rendered(np.zeros((360, WIDTH, 3), np.uint8), truths, owner)
    names, _ = label_frame(
        [(160, 100, 221, 300), (100, 100, 220, 300), (400, 0, 450, 80)], rendered
    )
    assert names == ["b", None, None]


def test_two_people_crossing_keep_their_own_identities(
    val: Split, models_dir: Path, tmp_path: Path
) -> None:
    """One crossing at mid-picture on one camera, through the real server (default settings).
    Seed 0 is the case reported in docs/quality.md; other seeds of this short scene do not all
    pass (seed 3 mixes the two people's identities after the crossing), and the full scene's
    crossings show the same (eval/results/synthvideo.md)."""
    scene = short_crossing(0, val)
    memo = Memo(tmp_path / "memo.pkl")
    truth = label(scene, memo)
    assert truth.recall()["detectable_recall"] >= 0.7  # the detector finds both people
    run = replay(scene, "hall", memo=memo)
    labels = truth.labels(scene, ["hall"])
    identities: dict[str, Counter[str]] = defaultdict(Counter)
    for sighting in run.sightings:
        person = who(labels, sighting.frame_index, sighting.box)
        if person in scene.people:
            identities[person][sighting.person_id] += 1
    assert set(identities) == {"s01", "s02"}
    assert all(sum(c.values()) >= 10 for c in identities.values())
    assert [len(c) for c in identities.values()] == [1, 1], dict(identities)
    assert set(identities["s01"]).isdisjoint(identities["s02"])
    # One alert each: each crossing person is one new visit.
    alerts = Counter(who(labels, s.frame_index, s.box) for s in run.sightings if s.new_person)
    assert alerts == Counter({"s01": 1, "s02": 1})


def test_the_scene_script_keeps_its_promises(val: Split) -> None:
    """Returns come back well after the visit window, re-entries and hand-overs well within it,
    for several seeds (``scene._check`` raises otherwise)."""
    for seed in range(5):
        scene = build(seed, val)
        assert 180.0 <= scene.duration_s <= 300.0
        assert 10 <= len(scene.people) <= 20
    assert scene_module.RETURN_GAP_S > 60.0 > scene_module.SAME_VISIT_GAP_S

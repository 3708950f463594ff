"""A custom set's files as a user has them: a relative DATASET.ROOT (as the templates and the
tutorial write it: the missing-image check joins each image's path to its folder once), and a json
whose keypoint category is not the first (chosen by the metainfo's name, DATASET.CATEGORY, or being
the only fit; never by position)."""
import json
import types
from pathlib import Path

import pytest

from semipose.common.errors import DataFileError
from semipose.config import get_cfg, update_config
from semipose.dataset.build import build_dataset
from semipose.dataset.toy_shapes import generate_toy_set

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "experiments/custom/lite32_96x96_Supervised.yaml"


def _cfg(**opts):
    opts = {"DATASET.METAINFO": "robot_arm.yaml", "WORKERS": "0", **opts}
    args = types.SimpleNamespace(cfg=str(TEMPLATE), opts=[s for kv in opts.items() for s in kv],
                                 distributed=False, local_rank=-1)
    return update_config(get_cfg(), args)


@pytest.mark.parametrize("is_train", [True, False])
def test_relative_root_finds_every_image(tmp_path, monkeypatch, is_train):
    generate_toy_set(str(tmp_path / "arm"), num_train=4, num_val=3, num_unlabeled=0,
                     video_frames=0, image_size=(64, 64), seed=1)
    monkeypatch.chdir(tmp_path)
    ds = build_dataset(_cfg(**{"DATASET.ROOT": "arm/"}), is_train=is_train)
    assert len(ds) == (4 if is_train else 3)
    assert all(Path(r["image"]).is_file() for r in ds.db)
    # a bare-name export with a relative split folder
    data = json.loads((tmp_path / "arm/annotations/val.json").read_text())
    folder = Path(data["images"][0]["file_name"]).parent
    data["images"] = [dict(img, file_name=Path(img["file_name"]).name) for img in data["images"]]
    (tmp_path / "arm/bare.json").write_text(json.dumps(data))
    bare = build_dataset(_cfg(**{"DATASET.ROOT": "arm", "DATASET.VAL_ANN": "bare.json",
                                 "DATASET.VAL_IMAGES": str(folder)}), is_train=False)
    assert len(bare) == 3 and all(Path(r["image"]).is_file() for r in bare.db)


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    root = tmp_path_factory.mktemp("arm_cats")
    generate_toy_set(str(root), num_train=0, num_val=3, num_unlabeled=0, video_frames=0,
                     image_size=(64, 64), seed=2)
    return root


def _with_categories(root, name, cats, ann_cat):
    data = json.loads((root / "annotations/val.json").read_text())
    data["categories"] = cats
    data["annotations"] = [dict(a, category_id=ann_cat) for a in data["annotations"]]
    (root / name).write_text(json.dumps(data))
    return name


def _val(root, ann, **opts):
    return build_dataset(_cfg(**{"DATASET.ROOT": str(root), "DATASET.VAL_ANN": ann, **opts}),
                         is_train=False)


NINE = [f"k{i}" for i in range(9)]


def test_the_keypoint_category_is_chosen_by_name_never_by_position(arm):
    other = {"id": 1, "name": "table", "keypoints": []}
    ann = _with_categories(arm, "named.json", [other, {"id": 7, "name": "robot_arm"}], 7)
    ds = _val(arm, ann)
    assert len(ds) == 3 and ds.person_cat_id == 7
    # none named as the metainfo: the only one with its 9 keypoints
    arm4 = {"id": 4, "name": "arm", "keypoints": NINE}
    ann = _with_categories(arm, "counted.json", [other, arm4], 4)
    assert len(_val(arm, ann)) == 3
    # two candidates: an error naming the file and both categories, unless DATASET.CATEGORY says
    two = [arm4, {"id": 5, "name": "arm2", "keypoints": NINE}]
    ann = _with_categories(arm, "two.json", two, 5)
    with pytest.raises(DataFileError, match=r"two.json: which category .*4: 'arm', 5: 'arm2'.*"
                       r"DATASET.CATEGORY"):
        _val(arm, ann)
    for want in ("arm2", "5"):
        ds = _val(arm, ann, **{"DATASET.CATEGORY": want})
        assert len(ds) == 3 and ds.person_cat_id == 5
    # the category named holds no annotation: 0 samples, an error naming the rule
    with pytest.raises(DataFileError, match=r"0 annotations of category 4 \(DATASET.CATEGORY "):
        _val(arm, ann, **{"DATASET.CATEGORY": "arm"})
    with pytest.raises(DataFileError, match=r"no category 'dog' \(DATASET.CATEGORY\)"):
        _val(arm, ann, **{"DATASET.CATEGORY": "dog"})

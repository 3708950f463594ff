"""A custom set under a relative DATASET.ROOT (as the templates and the tutorial write it): the
missing-image check joins each image's path to its folder once, so every image is found, with the
file_names carrying their folder and with bare names in a split folder."""
import json
import types
from pathlib import Path

import pytest

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

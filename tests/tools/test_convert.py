"""Tests of the DeepLabCut converter (semipose.tools.convert dlc): small CollectedData CSVs and
32x24 / 40x30 images written here, the COCO json and metainfo it writes, its errors, and the set
loaded through the project's own custom dataset."""
import csv
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from semipose.common.errors import UserError, run_cli
from semipose.common.metainfo import load_metainfo
from semipose.tools import convert
from semipose.tools.convert import DLCFormatError, convert_dlc, derive_flip_pairs

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "experiments/custom/res18_256x256_Supervised.yaml"
PARTS = ["snout", "leftEar", "rightEar", "L_paw", "R_paw", "tailbase"]
MICE = ["nose", "left_ear", "right_ear", "tail"]


def _image(path, width, height):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))


def _csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def _cells(points, parts):
    """x, y cells of ``parts`` from ``{part: (x, y)}``; '' for an unlabeled one."""
    out = []
    for part in parts:
        xy = points.get(part)
        out += ["", ""] if xy is None else [str(xy[0]), str(xy[1])]
    return out


def _single_header(width=1):
    pad = [""] * (width - 1)
    return [["scorer", *pad] + ["Ann"] * 12,
            ["bodyparts", *pad] + [p for p in PARTS for _ in "xy"],
            ["coords", *pad] + ["x", "y"] * 6]  # fmt: skip


VIDEO1 = {  # one-column index, 32x24 images
    "img000.png": {"snout": (10, 8), "leftEar": (12, 6), "L_paw": (20, 14), "R_paw": (22, 15),
                   "tailbase": (28, 20)},
    "img001.png": {"snout": (1, 2), "tailbase": (31, 23)},
}  # fmt: skip
VIDEO2 = {  # three-column index, 40x30 images; img002 has no labeled point
    "img000.png": {"snout": (5.5, 6.25), "rightEar": (9, 4)},
    "img001.png": {"leftEar": (30, 20), "R_paw": (35, 25)},
    "img002.png": {},
}


@pytest.fixture
def project(tmp_path):
    """A single-animal project: video1 (one-column index), video2 (three-column index), a
    config.yaml."""
    proj = tmp_path / "mouse-Ann-2024-01-01"
    rows = _single_header()
    for name, points in VIDEO1.items():
        _image(proj / "labeled-data/video1" / name, 32, 24)
        rows.append([f"labeled-data/video1/{name}", *_cells(points, PARTS)])
    _csv(proj / "labeled-data/video1/CollectedData_Ann.csv", rows)
    rows = _single_header(3)
    for name, points in VIDEO2.items():
        _image(proj / "labeled-data/video2" / name, 40, 30)
        rows.append(["labeled-data", "video2", name, *_cells(points, PARTS)])
    _csv(proj / "labeled-data/video2/CollectedData_Ann.csv", rows)
    (proj / "labeled-data/video1_labeled").mkdir()  # DeepLabCut's drawn copies: no CSV
    config = {"Task": "mouse", "scorer": "Ann", "multianimalproject": False,
              "bodyparts": PARTS,
              "skeleton": [["snout", "leftEar"], ["snout", "rightEar"], ["snout", "tailbase"]]}
    (proj / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return proj


@pytest.fixture
def ma_project(tmp_path):
    """A multi-animal project: two mice and the 'single' individual (a 'corner' landmark)."""
    proj = tmp_path / "mice"
    header = [["scorer"] + ["Bo"] * 18,
              ["individuals"] + ["m1"] * 8 + ["m2"] * 8 + ["single"] * 2,
              ["bodyparts"] + [p for p in MICE for _ in "xy"] * 2 + ["corner", "corner"],
              ["coords"] + ["x", "y"] * 9]  # fmt: skip
    row0 = _cells({"nose": (5, 5), "left_ear": (6, 4), "tail": (15, 12)}, MICE) + _cells(
        {"nose": (20, 10), "left_ear": (21, 9), "right_ear": (22, 11), "tail": (30, 20)}, MICE
    ) + ["1", "1"]
    row1 = _cells({}, MICE) + _cells({"nose": (10, 10), "tail": (12, 12)}, MICE) + ["", ""]
    rows = header + [["labeled-data/cage/img000.png", *row0],
                     ["labeled-data/cage/img001.png", *row1]]  # fmt: skip
    for k in range(2):
        _image(proj / f"labeled-data/cage/img00{k}.png", 32, 24)
    _csv(proj / "labeled-data/cage/CollectedData_Bo.csv", rows)
    config = {"Task": "mice", "multianimalproject": True, "bodyparts": "MULTI!",
              "individuals": ["m1", "m2"], "multianimalbodyparts": MICE,
              "uniquebodyparts": ["corner"], "skeleton": [["nose", "tail"]]}  # fmt: skip
    (proj / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return proj


def _load(path):
    return json.loads(Path(path).read_text())


def _triples(ann):
    return [tuple(ann["keypoints"][k : k + 3]) for k in range(0, len(ann["keypoints"]), 3)]


def test_single_animal_one_and_three_column_index(project, tmp_path):
    out = tmp_path / "out"
    res = convert_dlc([project], out, config=project / "config.yaml")
    data = _load(res.train)
    assert res.val is None and res.root == str(project) and res.name == "mouse"
    sizes = [(im["id"], im["file_name"], im["width"], im["height"]) for im in data["images"]]
    assert sizes == [(1, "labeled-data/video1/img000.png", 32, 24),
                     (2, "labeled-data/video1/img001.png", 32, 24),
                     (3, "labeled-data/video2/img000.png", 40, 30),
                     (4, "labeled-data/video2/img001.png", 40, 30),
                     (5, "labeled-data/video2/img002.png", 40, 30)]  # fmt: skip
    anns = data["annotations"]
    assert [(a["id"], a["image_id"]) for a in anns] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert _triples(anns[0]) == [(10, 8, 2), (12, 6, 2), (0, 0, 0), (20, 14, 2), (22, 15, 2),
                                 (28, 20, 2)]  # fmt: skip
    assert anns[0]["num_keypoints"] == 5 and anns[0]["iscrowd"] == 0
    # points x 10..28, y 6..20: 1.8 px (0.1 x 18) per side, inside the 32x24 image
    assert anns[0]["bbox"] == pytest.approx([8.2, 4.2, 21.6, 17.6])
    assert anns[0]["area"] == pytest.approx(21.6 * 17.6)
    # x 1..31, y 2..23: 3 px per side, clipped to the image
    assert anns[1]["bbox"] == pytest.approx([0, 0, 32, 24]) and anns[1]["area"] == 768
    assert _triples(anns[2]) == [(5.5, 6.25, 2), (0, 0, 0), (9, 4, 2)] + [(0, 0, 0)] * 3
    # 0.1 x 3.5 = 0.35 px is below the 1 px floor: 1 px per side
    assert anns[2]["bbox"] == pytest.approx([4.5, 3.0, 5.5, 4.25])
    cat = data["categories"]
    assert cat == [{"id": 1, "name": "mouse", "supercategory": "mouse", "keypoints": PARTS,
                    "skeleton": [[1, 2], [1, 3], [1, 6]]}]  # fmt: skip


def test_metainfo_flip_pairs_and_skeleton_from_the_config(project, tmp_path):
    res = convert_dlc([project], tmp_path / "out", config=project / "config.yaml")
    assert res.metainfo == str(tmp_path / "out" / "mouse.yaml")
    meta = load_metainfo(res.metainfo)
    assert meta.name == "mouse" and meta.keypoints == tuple(PARTS)
    assert meta.flip_pairs == ((1, 2), (3, 4))  # leftEar/rightEar, L_paw/R_paw
    assert meta.skeleton == ((0, 1), (0, 2), (0, 5))
    text = Path(res.metainfo).read_text()
    assert "- [leftEar, rightEar]" in text and "- [L_paw, R_paw]" in text
    res = convert_dlc([project], tmp_path / "o2", flip_pairs="snout:tailbase")
    assert load_metainfo(res.metainfo).flip_pairs == ((0, 5),) and res.skeleton == []


def test_flip_rule():
    names = ["nose", "leftEar", "rightEar", "ear_left", "ear_right", "L_paw", "R_paw", "paw-l",
             "paw-r", "LeftHip", "RightHip", "lip", "rip", "rear", "Left.knee", "knee"]
    assert derive_flip_pairs(names) == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]
    assert derive_flip_pairs(["r_eye", "l_eye", "right"]) == [(1, 0)]
    with pytest.raises(UserError, match="'wing' is not a keypoint"):
        convert.parse_flip_pairs("nose:wing", names)
    with pytest.raises(UserError, match="'nose' is in two pairs"):
        convert.parse_flip_pairs("nose:lip,rip:nose", names)
    assert convert.parse_flip_pairs("none", names) == []


def test_multi_animal_individuals_and_the_single_one(ma_project, tmp_path):
    res = convert_dlc([ma_project], tmp_path / "out", config=ma_project / "config.yaml")
    data = _load(res.train)
    assert res.keypoints == MICE + ["corner"] and res.flip_pairs == [(1, 2)]
    anns = data["annotations"]
    # image 1: m1 (right_ear empty), m2, the single individual; image 2: m2 only (m1 empty)
    assert [a["image_id"] for a in anns] == [1, 1, 1, 2]
    assert _triples(anns[0]) == [(5, 5, 2), (6, 4, 2), (0, 0, 0), (15, 12, 2), (0, 0, 0)]
    assert _triples(anns[1])[2] == (22, 11, 2) and anns[1]["num_keypoints"] == 4
    assert _triples(anns[2]) == [(0, 0, 0)] * 4 + [(1, 1, 2)]
    assert anns[2]["bbox"] == pytest.approx([0, 0, 2, 2])  # one point: 1 px per side, clipped
    assert _triples(anns[3]) == [(10, 10, 2), (0, 0, 0), (0, 0, 0), (12, 12, 2), (0, 0, 0)]
    assert anns[3]["bbox"] == pytest.approx([9, 9, 4, 4])
    assert data["categories"][0]["skeleton"] == [[1, 4]]
    skip = convert_dlc([ma_project], tmp_path / "skip", single="skip")  # no config
    data = _load(skip.train)
    assert skip.keypoints == MICE and len(data["annotations"]) == 3
    assert all(len(a["keypoints"]) == 12 for a in data["annotations"])


def test_split_by_fraction_is_deterministic_and_by_folder(project, tmp_path):
    first = convert_dlc([project], tmp_path / "a", val_fraction=0.4, seed=3)
    again = convert_dlc([project], tmp_path / "b", val_fraction=0.4, seed=3)
    train, val = _load(first.train), _load(first.val)
    ids = sorted(im["id"] for im in train["images"] + val["images"])
    assert len(val["images"]) == 2 and ids == [1, 2, 3, 4, 5]
    assert _load(again.val) == val and _load(again.train) == train
    assert {a["image_id"] for a in val["annotations"]} <= {im["id"] for im in val["images"]}
    seeds = {tuple(im["id"] for im in _load(convert_dlc(
        [project], tmp_path / f"s{s}", val_fraction=0.4, seed=s).val)["images"]) for s in range(6)}
    assert len(seeds) > 1
    res = convert_dlc([project], tmp_path / "c", val_folders=["video2"])
    assert [im["id"] for im in _load(res.train)["images"]] == [1, 2]
    assert [im["id"] for im in _load(res.val)["images"]] == [3, 4, 5]
    assert res.images == (2, 3) and res.objects == (2, 2)
    with pytest.raises(UserError, match="--val-folders video9: not among .*video1, video2"):
        convert_dlc([project], tmp_path / "d", val_folders=["video9"])


def test_root_option_and_sources_given_as_csv_files(project, tmp_path):
    csv_file = project / "labeled-data/video1/CollectedData_Ann.csv"
    res = convert_dlc([csv_file], tmp_path / "out", root=project / "labeled-data")
    assert [im["file_name"] for im in _load(res.train)["images"]] == [
        "video1/img000.png", "video1/img001.png"]
    text = "\n".join(convert.summary(res, "data/mouse"))
    snippet = yaml.safe_load(text[text.index("DATASET:"):])
    assert snippet["DATASET"]["ROOT"] == "data/mouse"
    assert snippet["DATASET"]["TRAIN_ANN"] == str(tmp_path / "out" / "train.json")  # outside root
    assert snippet["MODEL"] == {"NUM_JOINTS": 6}


def _bad(tmp_path, header, row, name="CollectedData_X.csv"):
    folder = tmp_path / "proj/labeled-data/v"
    _image(folder / "a.png", 32, 24)
    return _csv(folder / name, [*header, ["labeled-data/v/a.png", *row]])


@pytest.mark.parametrize("case, pattern", [
    ("no_header", r"CollectedData_X.csv row 1: expected the header row 'scorer'"),
    ("likelihood", r"CollectedData_X.csv row 3 column 4: coords 'likelihood', expected 'x'"),
    ("text", r"CollectedData_X.csv row 4 column 2 \(snout x\): 'abc' is not a number"),
    ("half", r"CollectedData_X.csv row 4 column 3: snout has x but no y"),
])  # fmt: skip
def test_bad_csv_names_file_row_and_column(tmp_path, case, pattern):
    header = [["scorer", "A", "A"], ["bodyparts", "snout", "snout"], ["coords", "x", "y"]]
    row = ["3", "4"]
    if case == "no_header":
        header = header[1:]
    elif case == "likelihood":
        header = [h + [h[1]] * 2 for h in header]
        header[2][3:] = ["likelihood", "y"]
        row = ["3", "4", "1", "1"]
    elif case == "text":
        row = ["abc", "4"]
    else:
        row = ["3", ""]
    path = _bad(tmp_path, header, row)
    with pytest.raises(DLCFormatError, match=pattern):
        convert_dlc([path], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_image_and_unknown_body_part_exit_2(project, tmp_path, capsys):
    out = tmp_path / "out"
    os.remove(project / "labeled-data/video2/img001.png")
    assert run_cli(convert.main, ["dlc", str(project), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert f"{project / 'labeled-data/video2/CollectedData_Ann.csv'} row 5: image " \
        "labeled-data/video2/img001.png not found" in err
    assert not out.exists()
    config = project / "config.yaml"
    config.write_text(config.read_text().replace("- R_paw\n", ""))
    assert run_cli(convert.main, ["dlc", str(project), "--out", str(out), "--config",
                                  str(config)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "video1/CollectedData_Ann.csv row 2 column 10: body part 'R_paw' is not in the " \
        f"config {config}" in err
    assert not out.exists()


def test_command_line_exit_codes(project, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "lib"))
    path = project / "labeled-data/video1/CollectedData_Ann.csv"
    rows = list(csv.reader(path.open()))
    rows[4][3] = "twelve"
    _csv(path, rows)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "semipose.tools.convert", "dlc", str(project), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.strip() == (f"error: {path} row 5 column 4 (leftEar x): 'twelve' is not a "
                                   "number")  # fmt: skip
    rows[4][3] = ""
    _csv(path, rows)
    proc = subprocess.run(cmd + ["--val-folders", "video1"], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out / 'val.json'}: 2 images, 2 objects" in proc.stdout
    assert "  VAL_ANN: " + str(out / "val.json") in proc.stdout
    assert sorted(os.listdir(out)) == ["dlc.yaml", "train.json", "val.json"]


@pytest.mark.usefixtures("single_thread")
def test_output_loads_through_the_custom_dataset(project, tmp_path):
    from semipose.config import get_cfg, update_config
    from semipose.dataset.build import build_dataset

    out = project / "coco"
    res = convert_dlc([project], out, config=project / "config.yaml", val_folders=["video2"])
    opts = {"DATASET.ROOT": str(project), "DATASET.METAINFO": "coco/mouse.yaml",
            "DATASET.TRAIN_ANN": "coco/train.json", "DATASET.VAL_ANN": "coco/val.json",
            "MODEL.NUM_JOINTS": "6", "MODEL.IMAGE_SIZE": "[64, 64]",
            "MODEL.EXTRA.HEATMAP_SIZE": "[16, 16]", "WORKERS": "0", "DEVICE": "cpu",
            "OUTPUT_DIR": str(tmp_path / "output"), "LOG_DIR": str(tmp_path / "log")}
    args = types.SimpleNamespace(cfg=str(TEMPLATE), opts=[x for kv in opts.items() for x in kv],
                                 distributed=False, local_rank=-1)  # fmt: skip
    cfg = update_config(get_cfg(), args)
    assert convert.relative_path(res.val, project) == cfg.DATASET.VAL_ANN
    train = build_dataset(cfg, is_train=True)
    val = build_dataset(cfg, is_train=False)
    assert len(train) == 2 and len(val) == 2  # video2's image without a point gives no sample
    assert val.num_joints == 6 and val.flip_pairs == [[1, 2], [3, 4]]
    assert np.allclose(train.db[0]["joints_3d"][:, :2],
                       [[10, 8], [12, 6], [0, 0], [20, 14], [22, 15], [28, 20]])  # fmt: skip
    assert train.db[0]["joints_3d_vis"][:, 0].tolist() == [1, 1, 0, 1, 1, 1]
    assert val.db[1]["image"] == str(project / "labeled-data/video2/img001.png")
    inp, target, weight, _ = val[0]
    assert tuple(inp.shape) == (3, 64, 64) and tuple(target.shape) == (6, 16, 16)
    assert float(weight.sum()) == 2.0  # snout and rightEar labeled

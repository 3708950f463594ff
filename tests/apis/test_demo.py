"""The demo's pictures from a run's files: predictions beside the ground truth, learning curve."""
import json

import cv2
import numpy as np
import pytest

from semipose.apis import demo
from semipose.dataset.synthetic import generate


@pytest.fixture(scope="module")
def val_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_synth")
    res = generate(str(root), num_train=1, num_val=3, image_size=(160, 120), seed=2)
    return res


def test_panels_draw_ground_truth_and_predictions(val_set, tmp_path):
    gt = json.loads(open(val_set["val_ann"]).read())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                "score": 0.9} for a in gt["annotations"]]
    (tmp_path / "results").mkdir()
    res_file = tmp_path / "results" / "person_keypoints_val2017_eval_3.json"
    res_file.write_text(json.dumps(results))
    assert demo.best_results_file(str(tmp_path)) == str(res_file)
    out = demo.prediction_panels(str(res_file), val_set["val_ann"], val_set["val_images"],
                                 str(tmp_path / "panels.png"), num_images=2, columns=2)
    panels = cv2.imread(out)
    assert panels.shape == (120, 2 * (2 * 160 + 4), 3)
    left, right = panels[:, :160], panels[:, 164:324]
    image = cv2.imread(f"{val_set['val_images']}/{gt['images'][0]['file_name']}")
    assert np.abs(left.astype(int) - image).sum() > 0  # something drawn
    # the prediction equals the ground truth here: both halves are drawn alike below the labels
    assert np.abs(left[30:].astype(int) - right[30:]).mean() < 1.0
    with pytest.raises(FileNotFoundError, match="no validation results"):
        demo.best_results_file(str(tmp_path / "nowhere"))


def test_learning_curve_from_metrics(tmp_path):
    lines = [{"type": "epoch", "epoch": e, "iteration": 10 * e, "elapsed_s": 5.0,
              "ap": {"net1": 0.1 * e, "ensemble": 0.12 * e}} for e in range(4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = demo.learning_curve(str(tmp_path / "metrics.jsonl"), str(tmp_path / "curve.png"))
    img = cv2.imread(out)
    assert img.shape == (400, 640, 3)
    red = (img[..., 2] > 150) & (img[..., 0] < 80) & (img[..., 1] < 80)  # the ensemble's line
    assert red.sum() > 100
    (tmp_path / "empty.jsonl").write_text(json.dumps({"type": "epoch", "epoch": 0}) + "\n")
    with pytest.raises(ValueError, match="no validated epoch"):
        demo.learning_curve(str(tmp_path / "empty.jsonl"), str(tmp_path / "x.png"))


def test_final_table_is_the_last_validated_epoch(tmp_path):
    table = {"AP": 0.3125, "Ap .5": 0.75}
    lines = [{"type": "epoch", "epoch": 0, "iteration": 5, "elapsed_s": 10.0},
             {"type": "epoch", "epoch": 1, "iteration": 10, "elapsed_s": 12.5,
              "metrics": {"net1": table, "ensemble": {"AP": 0.4, "Ap .5": 0.8}}},
             {"type": "epoch", "epoch": 2, "iteration": 15, "elapsed_s": 9.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    text = demo.final_table(str(tmp_path / "metrics.jsonl"), "arch").splitlines()
    assert text[0] == "AP after epoch 1 (22 s of training):"
    assert text[1] == "net1" and text[4] == "| arch | 0.312 | 0.750 |"
    assert text[5] == "ensemble" and text[8] == "| arch | 0.400 | 0.800 |"

"""Experiment folder naming and logging set-up (``semipose.utils.logger``)."""

import logging
from pathlib import Path

import pytest

from semipose.config import get_cfg, get_model_name
from semipose.utils.logger import AverageMeter, create_logger, output_subdirs


def test_output_subdirs_takes_the_model_name():
    cfg = get_cfg()
    cfg.DATASET.TRAIN_DATASET = "mix_coco_coco"
    cfg.DATASET.HYBRID_JOINTS_TYPE = "a:b"
    name = get_model_name(cfg)[0]
    assert output_subdirs(cfg, "experiments/x/256x192_COCO.yaml", name) == (
        "mix_coco_coco_a_b", name, "256x192_COCO"
    )
    assert output_subdirs(cfg, None, "m")[2] == "default"
    with pytest.raises(TypeError, match="get_model_name"):
        output_subdirs(cfg, None)


def test_create_logger_makes_the_folders_and_the_log_file(tmp_path):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    cfg.LOG_DIR = str(tmp_path / "log")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        _, out_dir, tb_dir = create_logger(cfg, "a/b.yaml", "valid", 0, model_name="pose_x_18")
        logging.getLogger("semipose.test").info("hello")
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        root.setLevel(level)
    assert Path(out_dir) == tmp_path / "out" / cfg.DATASET.TRAIN_DATASET / "pose_x_18" / "b"
    logs = list(Path(out_dir).glob("b_*_valid.log"))
    assert len(logs) == 1 and "hello" in logs[0].read_text()
    assert Path(tb_dir).parent == tmp_path / "log" / cfg.DATASET.TRAIN_DATASET / "pose_x_18"


def test_average_meter():
    meter = AverageMeter()
    meter.update(2.0, n=3)
    meter.update(4.0)
    assert meter.avg == pytest.approx(2.5) and meter.count == 4 and meter.val == 4.0

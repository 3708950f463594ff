"""Shared test fixtures: the real-data samples beside the repository and small CPU settings."""
import json
import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA = REPO_ROOT.parent / "shared" / "realdata"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: each worker and the programs its tests start compute
    # on one thread, so the two never compete for a core.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def realdata_dir():
    """``../shared/realdata`` (read-only real COCO / AIC / MPII samples); skips when absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real-data samples not found at {REALDATA}")
    return REALDATA


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny synthetic COCO-format set (6 train and 3 val images of 160x120, seed 3) shared by
    the training tests (the apis tests have their own)."""
    from semipose.dataset.synthetic import generate

    root = tmp_path_factory.mktemp("synth")
    generate(str(root), num_train=6, num_val=3, image_size=(160, 120), seed=3)
    return root


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def wild_coco(tmp_path_factory):
    """The function ``wild_coco(name, num_val, seed)`` -> ``(root, train detections file)``: a new
    synthetic COCO set of 4 train and ``num_val`` val images of 160x120 under a temporary folder
    ``name``, plus an ``unlabeled2017`` view of its train images (the WILD unlabeled set)."""
    from semipose.dataset.synthetic import generate

    def make(name, num_val, seed):
        root = tmp_path_factory.mktemp(name)
        info = generate(str(root), num_train=4, num_val=num_val, image_size=(160, 120), seed=seed)
        coco = root / "coco"
        os.symlink(coco / "images" / "train2017", coco / "images" / "unlabeled2017")
        train = json.loads(Path(info["train_ann"]).read_text())
        images = {"images": train["images"], "categories": train["categories"]}
        (coco / "annotations" / "image_info_unlabeled2017.json").write_text(json.dumps(images))
        return root, info["train_dets"]

    return make


def _tiny_opts(root, out, model_name="pose_dual", epochs=1, iters=2, extra=(), changes=None):
    """Command-line overrides of a tiny CPU training: a thin ResNet-18 (16-channel stem, the
    original's key names) with thin deconvolutions at 64x96
    on the tiny synthetic COCO-format set under ``root`` (GT boxes), writing under ``out``, for
    ``epochs`` epochs of at most ``iters`` iterations. ``changes`` maps a key to its new value, or
    to None to leave the key out (the default then holds); ``extra`` is appended as it is."""
    opts = {
        "OUTPUT_DIR": str(Path(out) / "output"),
        "LOG_DIR": str(Path(out) / "log"),
        "WORKERS": "0",
        "PRINT_FREQ": "1",
        "DEVICE": "cpu",
        "MODEL.NAME": model_name,
        "MODEL.INIT_WEIGHTS": "False",
        "MODEL.PRETRAINED": "",
        "MODEL.NUM_JOINTS": "24",
        "MODEL.IMAGE_SIZE": "[64, 96]",
        "MODEL.EXTRA.NUM_LAYERS": "18",
        "MODEL.EXTRA.BASE_WIDTH": "16",
        "MODEL.EXTRA.HEATMAP_SIZE": "[16, 24]",
        "MODEL.EXTRA.NUM_DECONV_FILTERS": "[32, 32, 32]",
        "MODEL.EXTRA.SIGMA": "1",
        "DATASET.ROOT": str(root),
        "DATASET.TRAIN_DATASET": "coco" if model_name == "pose_resnet" else "mix_coco_coco",
        "DATASET.TEST_DATASET": "coco",
        "DATASET.TRAIN_SET": "train",
        "DATASET.TEST_SET": "validation",
        "DATASET.TRAIN_LEN": "4",
        "MASK_JOINT_NUM": "2",
        "TRAIN.BATCH_SIZE": "2",
        "TRAIN.END_EPOCH": str(epochs),
        "TRAIN.LR_STEP": "[1, 2]",
        "TRAIN.MAX_ITERS": str(iters),
        "TEST.BATCH_SIZE": "4",
        "TEST.USE_GT_BBOX": "True",
        "TEST.OKS_THRE": "0.9",
        "TEST.IN_VIS_THRE": "0.2",
    }
    for key, value in (changes or {}).items():
        if value is None:
            del opts[key]
        else:
            opts[key] = value
    return [item for pair in opts.items() for item in pair] + list(extra)


@pytest.fixture(scope="session")
def tiny_opts():
    """The function ``tiny_opts(root, out, model_name="pose_dual", epochs=1, iters=2, extra=(),
    changes=None)``: the overrides list of a tiny CPU training run (see ``_tiny_opts``)."""
    return _tiny_opts


def _easy_set_opts(tmp_path, num_train, num_val, train_len=4):
    """Overrides that point a demo-style config (easy synthetic preset) at a tiny easy set of
    ``num_train`` + ``num_val`` images generated under ``tmp_path/easy``, with one loader process
    and the run's output and TensorBoard folders under ``tmp_path``."""
    root = tmp_path / "easy"
    return [
        "OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log"),
        "DATASET.ROOT", str(root), "TEST.COCO_BBOX_FILE",
        str(root / "coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"),
        "DATASET.SYNTHETIC.NUM_TRAIN", str(num_train), "DATASET.SYNTHETIC.NUM_VAL", str(num_val),
        "DATASET.TRAIN_LEN", str(train_len), "WORKERS", "0",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def easy_set_opts():
    """The function ``easy_set_opts(tmp_path, num_train, num_val, train_len=4)`` (see
    ``_easy_set_opts``)."""
    return _easy_set_opts


@pytest.fixture
def single_thread():
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~50x slower.
    Modules use it with ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

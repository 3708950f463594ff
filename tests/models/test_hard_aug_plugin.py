"""A hard augmentation with a setting of its own, added from outside the package: one op factory
registered and one setting declared; the config key, the settings object and a hard-view forward
follow without any other edit."""
import pytest
import torch

from semipose.common import hard_aug
from semipose.config import get_cfg, load_config
from semipose.methods import build_method
from semipose.models.augment_ops import (
    HARD_AUGS,
    HardAugSettings,
    HardOp,
    declare_setting,
    register_hard_aug,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = ["MODEL.NAME", "pose_cons", "MODEL.EXTRA.NUM_LAYERS", "18", "MODEL.IMAGE_SIZE", "[32, 32]",
         "MODEL.EXTRA.HEATMAP_SIZE", "[8, 8]", "MODEL.EXTRA.NUM_DECONV_FILTERS", "[8, 8, 8]",
         "MODEL.NUM_JOINTS", "24", "MODEL.INIT_WEIGHTS", "False"]  # fmt: skip


class Dim(HardOp):
    """``DIM``: the image times a constant."""

    name = "DIM"

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, images, joints=None, generator=None):
        return images * self.factor


@pytest.fixture
def dim_op():
    declare_setting("dim_factor", 0.5, "HARD_AUG.DIM_FACTOR", "DIM's image factor")
    register_hard_aug("DIM")(lambda s: Dim(s.dim_factor))
    yield
    HARD_AUGS.pop("DIM")
    hard_aug.SETTINGS.pop("dim_factor")


def test_a_plugin_op_with_its_own_setting_runs_in_the_hard_view(dim_op):
    assert get_cfg().HARD_AUG.DIM_FACTOR == 0.5
    assert HardAugSettings().dim_factor == 0.5 and HardAugSettings(dim_factor=2).dim_factor == 2
    cfg = load_config(None, [*SMALL, "HARD_AUG.OPS", "['DIM']", "HARD_AUG.DIM_FACTOR", "0.25",
                             "UNSUP_TRANSFORM", "False"])  # fmt: skip
    model = build_method(cfg).build_model(is_train=True).train()
    assert [step.factor for step in model.hard_aug.steps] == [0.25]
    torch.manual_seed(0)
    sup, unsup = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    out = model([sup, unsup])
    torch.testing.assert_close(out["cons_x"], unsup * 0.25, rtol=0, atol=0)
    assert out["cons_ht"].shape == (2, 24, 8, 8)


def test_undeclared_settings_are_refused():
    with pytest.raises(TypeError, match="undeclared hard-augmentation settings \\['dim_factor'\\]"):
        HardAugSettings(dim_factor=2)
    assert "DIM_FACTOR" not in get_cfg().HARD_AUG


def test_a_declared_key_cannot_be_taken_twice():
    with pytest.raises(KeyError, match="HARD_AUG.CO_HOLES already belongs"):
        declare_setting("other_holes", 1, "HARD_AUG.CO_HOLES")
    with pytest.raises(KeyError, match="'co_holes' is already declared"):
        declare_setting("co_holes", 3, "HARD_AUG.CO_HOLES")

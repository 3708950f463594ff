"""The metainfo files: the built-in ones hold the original's tables unchanged; a malformed file
is an error naming the file and the key."""
import numpy as np
import pytest

from semipose.common import joints as J
from semipose.common.metainfo import MetainfoError, builtin_metainfo, load_metainfo

# The tables as they were written in code before they moved to files (spec §4).
UNION = ["root", "rhip", "rkne", "rank", "lhip", "lkne", "lank", "belly", "thorax", "neck",
         "upper neck", "nose", "head", "head top", "lsho", "lelb", "lwri", "rsho", "relb", "rwri",
         "reye", "leye", "rear", "lear"]  # fmt: skip
COCO = ["nose", "leye", "reye", "lear", "rear", "lsho", "rsho", "lelb", "relb", "lwri", "rwri",
        "lhip", "rhip", "lkne", "rkne", "lank", "rank"]  # fmt: skip
MPII = ["rank", "rkne", "rhip", "lhip", "lkne", "lank", "root", "thorax", "upper neck", "head top",
        "rwri", "relb", "rsho", "lsho", "lelb", "lwri"]  # fmt: skip
AIC = ["rsho", "relb", "rwri", "lsho", "lelb", "lwri", "rhip", "rkne", "rank", "lhip", "lkne",
       "lank", "head top", "neck"]  # fmt: skip
COCO_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07,
                        1.07, 0.87, 0.87, 0.89, 0.89]) / 10.0  # fmt: skip
AIC_SIGMAS = 2.0 * np.array([0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891,
                             0.01402144, 0.03909642, 0.03686941, 0.01981803, 0.03843971,
                             0.03412318, 0.02415081, 0.01291456, 0.01236173])  # fmt: skip
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
                 (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5),
                 (4, 6))  # fmt: skip
MPII_SKELETON = ((0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11),
                 (11, 12), (12, 7), (13, 7), (13, 14), (14, 15))  # fmt: skip
AIC_SKELETON = ((0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8), (9, 10), (10, 11), (12, 13),
                (13, 0), (13, 3), (0, 6), (3, 9))  # fmt: skip


def test_union_file_is_the_union_table():
    union = builtin_metainfo("union")
    assert list(union.keypoints) == UNION
    assert [list(p) for p in union.flip_pairs] == [[1, 4], [2, 5], [3, 6], [14, 17], [15, 18],
                                                   [16, 19], [20, 21], [22, 23]]  # fmt: skip
    assert union.upper_body_ids == tuple(range(7, 24))
    assert union.lower_body_ids == tuple(range(0, 7))
    assert J.UNION_JOINTS == dict(enumerate(UNION)) and J.NUM_UNION_JOINTS == 24


def test_native_files_are_the_native_tables():
    assert J.COCO_JOINTS == dict(enumerate(COCO))
    assert J.MPII_JOINTS == dict(enumerate(MPII))
    assert J.AIC_JOINTS == dict(enumerate(AIC))
    # Bit-identical sigmas: the OKS scores do not move.
    assert J.COCO_SIGMAS.dtype == np.float64 and np.array_equal(J.COCO_SIGMAS, COCO_SIGMAS)
    assert np.array_equal(J.AIC_SIGMAS, AIC_SIGMAS)
    assert builtin_metainfo("mpii").sigmas is None
    assert builtin_metainfo("coco").skeleton == COCO_SKELETON
    assert builtin_metainfo("mpii").skeleton == MPII_SKELETON
    assert builtin_metainfo("ai_challenger").skeleton == AIC_SKELETON


def test_native_flip_pairs_follow_the_union_pairs():
    coco = builtin_metainfo("coco")
    for a, b in coco.flip_pairs:
        ua, ub = J.COCO_SU[a], J.COCO_SU[b]
        assert sorted((ua, ub)) in J.FLIP_PAIRS
    assert len(coco.flip_pairs) == 8
    assert coco.joint_colors[5] == (235, 140, 30) and coco.limb_colors[0] == (255, 170, 60)


def test_user_file_by_name_and_index(tmp_path):
    path = tmp_path / "arm.yaml"
    path.write_text("keypoints: [base, l_tip, r_tip]\nflip_pairs: [[l_tip, r_tip]]\n"
                    "skeleton: [[0, 1], [base, r_tip]]\nsigmas: [0.1, 0.2, 0.2]\n")
    meta = load_metainfo(path)
    assert meta.name == "arm" and meta.num_joints == 3
    assert meta.flip_pairs == ((1, 2),) and meta.skeleton == ((0, 1), (0, 2))
    assert meta.joint_colors[1] == (235, 140, 30) and meta.joint_colors[2] == (30, 140, 255)
    assert np.array_equal(meta.joint_weights, np.ones(3))
    assert np.allclose(meta.oks_sigmas(), [0.1, 0.2, 0.2])


@pytest.mark.parametrize("text, needle", [
    ("keypoints: [a, a]", "repeats"),
    ("keypoints: [a, b]\nskeleton: [[a, c]]", "skeleton names 'c'"),
    ("keypoints: [a, b]\nsigmas: [0.1]", "sigmas must be a list of 2"),
    ("keypoints: [a, b]\nflip_pair: [[a, b]]", "unknown key(s) ['flip_pair']"),
])  # fmt: skip
def test_malformed_file_names_file_and_key(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(MetainfoError) as err:
        load_metainfo(path)
    assert needle in str(err.value) and str(path) in str(err.value)

"""Tests of semipose.dataset.joints against the joint tables of the spec (§4)."""
import numpy as np
import pytest

from semipose.dataset import joints as J


def test_union_order_and_body_halves():
    assert J.NUM_UNION_JOINTS == 24 == len(J.UNION_JOINTS)
    assert [J.UNION_JOINTS[i] for i in (0, 7, 10, 13, 16, 23)] == [
        "root", "belly", "upper neck", "head top", "lwri", "lear"
    ]  # fmt: skip
    assert J.UPPER_BODY_IDS == tuple(range(7, 24))
    assert J.LOWER_BODY_IDS == tuple(range(0, 7))


def test_flip_pairs_swap_left_and_right():
    pairs = [[1, 4], [2, 5], [3, 6], [14, 17], [15, 18], [16, 19], [20, 21], [22, 23]]
    assert J.FLIP_PAIRS == pairs
    for a, b in J.FLIP_PAIRS:
        na, nb = J.UNION_JOINTS[a], J.UNION_JOINTS[b]
        assert {na[0], nb[0]} == {"l", "r"} and na[1:] == nb[1:]


def test_coco_tables():
    assert J.COCO_SU == [11, 21, 20, 23, 22, 14, 17, 15, 18, 16, 19, 4, 1, 5, 2, 6, 3]
    expected_u2a = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 11: 0, 14: 5, 15: 7, 16: 9, 17: 6,
                    18: 8, 19: 10, 20: 2, 21: 1, 22: 4, 23: 3}  # fmt: skip
    for u in range(24):
        assert J.COCO_U2A[u] == expected_u2a.get(u, "*")
    # coco.py's combine_evaluate list is the same map with -1 for the missing joints.
    inverse = [-1, 12, 14, 16, 11, 13, 15, -1, -1, -1, -1, 0, -1, -1, 5, 7, 9, 6, 8, 10, 2, 1, 4, 3]
    assert [-1 if a == "*" else a for a in (J.COCO_U2A[u] for u in range(24))] == inverse
    assert J.COCO_TRAINED == [1, 2, 3, 4, 5, 6, 11, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]
    assert set(range(24)) - set(J.COCO_TRAINED) == {0, 7, 8, 9, 10, 12, 13}


def test_mpii_and_aic_tables():
    assert J.MPII_SU == [3, 2, 1, 4, 5, 6, 0, 8, 10, 13, 19, 18, 17, 14, 15, 16]
    assert J.AIC_SU == [17, 18, 19, 14, 15, 16, 1, 2, 3, 4, 5, 6, 13, 9]
    assert J.MPII_TRAINED == [0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 14, 15, 16, 17, 18, 19]
    assert J.AIC_TRAINED == [1, 2, 3, 4, 5, 6, 9, 13, 14, 15, 16, 17, 18, 19]
    # AIC "neck" is union 9, MPII "upper neck" union 10: they share 13 channels, not the neck.
    assert J.AIC_U2A[9] == 13 and J.AIC_U2A[10] == "*"
    assert J.MPII_U2A[10] == 8 and J.MPII_U2A[9] == "*"
    assert len(set(J.MPII_TRAINED) & set(J.AIC_TRAINED)) == 13


@pytest.mark.parametrize(
    "native, su", [(J.COCO_JOINTS, J.COCO_SU), (J.MPII_JOINTS, J.MPII_SU), (J.AIC_JOINTS, J.AIC_SU)]
)
def test_su_selects_native_order(native, su):
    assert [J.UNION_JOINTS[u] for u in su] == [native[i] for i in range(len(native))]


def test_do_mapping_places_rows():
    rng = np.random.default_rng(0)
    joints = rng.random((17, 3))
    vis = np.ones((17, 3))
    out, out_vis = J.do_mapping(joints, vis, J.COCO_U2A)
    assert out.shape == (24, 3) and out_vis.shape == (24, 3)
    np.testing.assert_array_equal(out[J.COCO_SU], joints)
    np.testing.assert_array_equal(out[[0, 7, 8, 9, 10, 12, 13]], 0.0)
    np.testing.assert_array_equal(out_vis.sum(axis=1) > 0, np.isin(np.arange(24), J.COCO_SU))


def test_sigmas():
    np.testing.assert_allclose(
        J.COCO_SIGMAS * 10,
        [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89],
    )  # fmt: skip
    assert J.AIC_SIGMAS.shape == (14,)

"""SSPCM (MODEL.NAME sspcm): the position-inconsistency correction and the score/distance filters
on hand-made heatmaps, the loss composition, the previous-epoch snapshot, the R50 + R18 student
option, two iterations of training with validation, and every SSPCM YAML for one iteration."""
import copy
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from semipose.checkpoint.files import load_checkpoint, unwrap_state_dict
from semipose.config import ConfigError, get_cfg, load_config, update_config
from semipose.engine import launch
from semipose.engine.events import read_metrics
from semipose.methods import build_method
from semipose.methods.sspcm import (
    SnapshotHook,
    SSPCMLoss,
    SSPCMMethod,
    distance_signals,
    score_signals,
)
from semipose.models.pose_resnet import PoseResNet
from semipose.models.sspcm import position_inconsistency_correction

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[2]
SSPCM_YAMLS = sorted(str(p.relative_to(REPO)) for p in (REPO / "experiments/sspcm").glob("*.yaml"))
SMALL = ["MODEL.NAME", "sspcm", "MODEL.EXTRA.NUM_LAYERS", "18", "MODEL.IMAGE_SIZE", "[32, 32]",
         "MODEL.EXTRA.HEATMAP_SIZE", "[8, 8]", "MODEL.EXTRA.NUM_DECONV_FILTERS", "[8, 8, 8]",
         "MODEL.NUM_JOINTS", "24", "MODEL.INIT_WEIGHTS", "False"]  # fmt: skip


def peaks(points, value, shape=(8, 8)):
    """(1, K, H, W) heatmaps, zero except ``value`` at each (x, y) of ``points``."""
    heat = torch.zeros(1, len(points), *shape)
    for k, (x, y) in enumerate(points):
        heat[0, k, y, x] = value
    return heat


# --------------------------------------------------------------------------- correction (PCM)
def test_correction_takes_the_pair_whose_positions_agree_best():
    # joint: 0 current teachers agree; 1 (A', B) closest; 2 (A, B') closest; 3 (A', B') closest;
    # 4 tie between (A', B) and (A, B') at distance 1 -> the first, (A', B); 5 all four equally far
    # -> the current pair
    a = peaks([(2, 2), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)], 1.0)
    b = peaks([(2, 2), (6, 6), (6, 6), (7, 7), (7, 7), (2, 0)], 2.0)
    a_prev = peaks([(5, 5), (6, 5), (0, 7), (3, 3), (7, 6), (0, 2)], 3.0)
    b_prev = peaks([(7, 0), (0, 7), (1, 2), (3, 4), (1, 0), (2, 2)], 4.0)
    pseudo, choice = position_inconsistency_correction(a, b, a_prev, b_prev)
    assert choice.tolist() == [[0, 1, 2, 3, 1, 0]]
    firsts, seconds = (a, a_prev, a, a_prev), (b, b, b_prev, b_prev)
    for k, c in enumerate(choice[0].tolist()):
        assert torch.equal(pseudo[0, k], 0.5 * (firsts[c][0, k] + seconds[c][0, k]))
    # joint 1 mixes the previous A (value 3 at (6, 5)) and the current B (value 2 at (6, 6))
    assert pseudo[0, 1, 5, 6] == 1.5 and pseudo[0, 1, 6, 6] == 1.0 and pseudo[0, 1].sum() == 2.5


def test_correction_of_identical_teachers_is_their_mean():
    torch.manual_seed(0)
    a, b = torch.rand(2, 24, 8, 6), torch.rand(2, 24, 8, 6)
    pseudo, choice = position_inconsistency_correction(a, b, a.clone(), b.clone())
    assert (choice == 0).all() and torch.equal(pseudo, 0.5 * (a + b))


# --------------------------------------------------------------------------- filters
def test_score_filter_and_reweight():
    # per joint, the maxima of A and B: means 0.175, 0.1 (not > 0.1), 0.05 and 0.45
    a = torch.zeros(1, 4, 8, 8)
    b = torch.zeros(1, 4, 8, 8)
    for k, (s_a, s_b) in enumerate([(0.3, 0.05), (0.1, 0.1), (0.05, 0.05), (0.9, 0.0)]):
        a[0, k, k, 2 * k] = s_a
        b[0, k, 7 - k, k] = s_b
    a[0, 0, 4, 4] = 0.01  # below the maximum: ignored
    mask, diff = score_signals(a, b, 0.1)
    assert mask.shape == diff.shape == (1, 4, 1)
    assert mask.flatten().tolist() == [1.0, 0.0, 0.0, 1.0]
    assert diff.flatten().tolist() == pytest.approx([0.75, 1.0, 1.0, 0.1])
    assert score_signals(a, b, 0.0)[0].flatten().tolist() == [1.0, 1.0, 1.0, 1.0]


def test_distance_filter_is_a_fraction_of_the_heatmap_diagonal():
    # 8 x 6 heatmap: diagonal 10; distances 0, 5 (3-4-5), sqrt(25 + 49) = 8.6
    a = peaks([(0, 0), (0, 0), (0, 0)], 1.0, shape=(8, 6))
    b = peaks([(0, 0), (3, 4), (5, 7)], 1.0, shape=(8, 6))
    mask, weight = distance_signals(a, b, 0.6)
    assert mask.flatten().tolist() == [1.0, 1.0, 0.0]
    assert weight.flatten().tolist() == pytest.approx([1.0, 0.5, 1 - np.sqrt(74) / 10])
    assert distance_signals(a, b, 0.5)[0].flatten().tolist() == [1.0, 0.0, 0.0]


def _cons_outputs(a, b, pseudo):
    """A training dict whose students predict 0 against targets of 1 (all three terms 0.5 per
    weighted joint share), with ``a``/``b`` the teachers the filters read."""
    n, k, h, w = a.shape
    zeros, ones = torch.zeros(n, k, h, w), torch.ones(n, k, h, w)
    out = {f"sup_ht{i}": zeros for i in (1, 2, 3)}
    out.update({f"cons_ht{i}": zeros.clone().requires_grad_() for i in (1, 2, 3)})
    out.update(unsup_ht1=a, unsup_ht2=b, pseudo_ht=pseudo,
               unsup_ht_trans1=ones, unsup_ht_trans2=ones, unsup_ht_trans3=ones)
    return out


def test_loss_filters_mask_the_right_terms():
    # 4 joints: 0 confident and agreeing; 1 agreeing but below the score threshold; 2 confident
    # but 5 px apart on an 8 x 6 grid (u = 0.5); 3 confident and 8.6 px apart (u = 0.86)
    a = peaks([(0, 0), (1, 1), (0, 0), (0, 0)], 0.8, shape=(8, 6))
    b = peaks([(0, 0), (1, 1), (3, 4), (5, 7)], 0.6, shape=(8, 6))
    a[0, 1, 1, 1], b[0, 1, 1, 1] = 0.05, 0.05
    out = _cons_outputs(a, b, 0.5 * (a + b))
    targets = [torch.ones(1, 4, 8, 6), None]
    weights = [torch.ones(1, 4, 1), torch.ones(1, 4, 1)]
    per_joint = 0.5 / 4  # 0.5 * (0 - 1)^2 averaged over 4 joints, per kept joint

    # the published recipes: score filter on all three terms, no distance filter
    total, parts = SSPCMLoss(score_filter=True, score_thre=0.1)(out, targets, weights)
    assert parts["loss_pose"].item() == pytest.approx(0.5 * 3 * 0.5)
    assert parts["loss_cons_student"].item() == pytest.approx(3 * per_joint)
    assert parts["loss_cons"].item() == pytest.approx(3 * 3 * per_joint)
    assert total.item() == pytest.approx(0.75 + 9 * per_joint)

    # distance filter at 0.6: the student also loses joint 3; the teachers' terms do not change
    loss = SSPCMLoss(score_filter=True, dist_filter=True, dist_thre=0.6)
    _, parts = loss(out, targets, weights)
    assert parts["loss_cons_student"].item() == pytest.approx(2 * per_joint)
    assert parts["loss_cons"].item() == pytest.approx((2 * 3 + 2) * per_joint)
    w, w_student = loss.weights(a, b, weights[1])
    assert w.flatten().tolist() == [1, 0, 1, 1] and w_student.flatten().tolist() == [1, 0, 1, 0]

    # with the distance reweighting the student's joint 2 counts 1 - 0.5
    loss = SSPCMLoss(score_filter=True, dist_filter=True, dist_reweight=True)
    assert loss.weights(a, b, weights[1])[1].flatten().tolist() == pytest.approx([1, 0, 0.5, 0])

    # FILTER_OR (kp_dist_and_score_both_satisfy): score OR distance, on all three terms; joint 1
    # (low score, distance 0) comes back, joint 3 (confident, far) stays
    loss = SSPCMLoss(score_filter=True, dist_filter=True, filter_or=True)
    w, w_student = loss.weights(a, b, weights[1])
    assert w.flatten().tolist() == [1, 1, 1, 1] and torch.equal(w, w_student)

    # no filter: everything counts; the unlabeled weight still masks untrained channels
    loss = SSPCMLoss(score_filter=False)
    w, w_student = loss.weights(a, b, torch.tensor([[[1.0], [0.0], [1.0], [1.0]]]))
    assert w.flatten().tolist() == [1, 0, 1, 1] and torch.equal(w, w_student)


# --------------------------------------------------------------------------- the module
def _tiny_model(*extra):
    method = build_method(load_config(None, [*SMALL, *extra]))
    return method, method.build_model(is_train=True)


def test_state_dict_holds_the_three_networks_only():
    method, model = _tiny_model()
    prefixes = {k.split(".")[0] for k in model.state_dict()}
    assert prefixes == {"resnet", "resnet2", "final_resnet"}
    assert model.final_resnet.head_name == "final_layer_1"
    assert "final_resnet.final_layer_1.weight" in model.state_dict()
    own = {id(p) for p in model.parameters()}
    assert not any(id(p) in own for net in model.snapshot for p in net.parameters())
    assert method.nets == ("net1", "net2", "student")
    assert method.heads == ("net1", "net2", "student", "ensemble", "ensemble3")
    # evaluation: three heatmaps, the published ensemble the teachers' mean, ensemble3 all three's
    per_net = tuple(torch.full((1, 24, 2, 2), float(i)) for i in (1, 2, 6))
    evaluated = method.eval_heatmaps(per_net)
    assert list(evaluated) == list(method.heads)
    assert torch.equal(evaluated["ensemble"], torch.full((1, 24, 2, 2), 1.5))
    assert torch.equal(evaluated["ensemble3"], torch.full((1, 24, 2, 2), 3.0))
    eval_model = method.build_model(is_train=False).eval()
    assert eval_model.snapshot is None
    assert len(eval_model(torch.randn(1, 3, 32, 32))) == 3


def test_best_head_comes_first_and_is_checked():
    method = build_method(load_config(None, [*SMALL, "SSPCM.BEST_HEAD", "student"]))
    assert method.heads == ("student", "net1", "net2", "ensemble", "ensemble3")
    per_net = tuple(torch.full((1, 24, 2, 2), float(i)) for i in (1, 2, 6))
    assert next(iter(method.eval_heatmaps(per_net).values()))[0, 0, 0, 0] == 6.0
    # TEST.SELECT_BY: 'net1' is the first head (here the student), 'mean' the three networks'
    results = {"perf": 0.6, "perfs": {"student": 0.6, "net1": 0.3, "net2": 0.6, "ensemble": 0.9}}
    assert method.selection_metrics(results) == pytest.approx(
        {"net1": 0.6, "mean": 0.5, "ensemble": 0.9})
    with pytest.raises(ConfigError, match="BEST_HEAD"):
        build_method(load_config(None, [*SMALL, "SSPCM.BEST_HEAD", "net3"]))


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def _same(state, net):
    return all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_snapshot_is_the_previous_epochs_weights():
    torch.manual_seed(0)
    method, model = _tiny_model("SSPCM.SCORE_FILTER", "False")
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)]
    targets = [torch.rand(2, 24, 8, 8), None]
    weights = [torch.ones(2, 24, 1), torch.ones(2, 24, 1)]

    def step():
        opt.zero_grad()
        out = model(x)
        method.loss(out, targets, weights)[0].backward()
        opt.step()
        return out

    hook = SnapshotHook()
    hook.trainer = types.SimpleNamespace(model=model, epoch=0)
    initial = [_state(model.resnet), _state(model.resnet2)]
    hook.before_epoch()
    assert model.epoch == 0 and _same(initial[0], model.snapshot[0])
    out = step()  # epoch 0 warms up: E = mean of the current teachers, no snapshot pass
    assert "prev_ht1" not in out and (out["pair_choice"] == 0).all()
    assert torch.equal(out["pseudo_ht"], 0.5 * (out["unsup_ht1"] + out["unsup_ht2"]))
    assert not _same(initial[0], model.resnet)
    end_of_0 = [_state(model.resnet), _state(model.resnet2)]
    frozen_a = copy.deepcopy(model.resnet)

    # a DDP-like wrapper: the hook reaches the module through .module
    hook.trainer = types.SimpleNamespace(model=types.SimpleNamespace(module=model), epoch=1)
    hook.before_epoch()
    assert model.epoch == 1 and model.pcm_active
    assert _same(end_of_0[0], model.snapshot[0]) and _same(end_of_0[1], model.snapshot[1])
    out = step()
    # the snapshot's heatmaps are epoch 0's final A (train-mode BatchNorm, as published)
    assert torch.allclose(out["prev_ht1"], frozen_a.train()(x[1]), atol=1e-6)
    # A moved on, the snapshot's weights did not (its BatchNorm running statistics, unused in
    # train mode, follow the batches until the next refresh)
    assert not _same(end_of_0[0], model.resnet)
    assert all(torch.equal(p, end_of_0[0][k]) for k, p in model.snapshot[0].named_parameters())
    assert all(p.grad is None for net in model.snapshot for p in net.parameters())
    # the pseudo-label is a per-joint pair of current/previous teachers
    pseudo, choice = position_inconsistency_correction(
        out["unsup_ht1"], out["unsup_ht2"], out["prev_ht1"], out["prev_ht2"]
    )
    assert torch.equal(out["pseudo_ht"], pseudo) and torch.equal(out["pair_choice"], choice)


def test_snapshot_follows_device_and_dtype_moves():
    _, model = _tiny_model()
    model.double()
    assert all(p.dtype == torch.float64 for net in model.snapshot for p in net.parameters())


def test_hard_images_use_the_cross_teachers_and_the_pseudo_label(monkeypatch):
    _, model = _tiny_model("HARD_AUG.OPS", "['SSCO']", "UNSUP_TRANSFORM", "False")
    seen = []

    def record(source, *heats, generator=None):
        seen.extend(heats)
        return tuple(source + i for i in range(len(heats)))

    monkeypatch.setattr(model, "_hard_ops", record)
    out = model.train()([torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)])
    assert seen[0] is out["unsup_ht2"] and seen[1] is out["unsup_ht1"]
    assert seen[2] is out["pseudo_ht"]
    # the student runs on the third image
    assert torch.allclose(out["unsup_x_trans_3"] - out["unsup_x_trans"], torch.tensor(2.0))
    assert out["unsup_ht_trans3"] is out["pseudo_ht"]  # no affine: the targets are unwarped


def test_unsupported_controls_are_refused():
    with pytest.raises(ValueError, match="CONS_SAME_VIEW"):
        _tiny_model("CONS_SAME_VIEW", "True")
    with pytest.raises(ValueError, match="HARD_AUG.PATHS"):
        _tiny_model("HARD_AUG.PATHS", "[['JO'], ['JC']]")


# --------------------------------------------------------------------------- student backbone
def test_r50_teachers_with_r18_student_builds():
    cfg = load_config(str(REPO / "experiments/sspcm/res50_res18_256x192_COCO1K_SSPCM.yaml"),
                      ["MODEL.INIT_WEIGHTS", "False"])
    method = build_method(cfg)
    with torch.device("meta"):
        model = method.build_model(is_train=True)
        r18 = PoseResNet(num_layers=18, num_joints=24, head_name="final_layer_1")
        r50 = PoseResNet(num_layers=50, num_joints=24, head_name="final_layer_1")
    assert (model.resnet.num_layers, model.resnet2.num_layers) == (50, 50)
    assert model.final_resnet.num_layers == 18

    def count(net):
        return sum(p.numel() for p in net.parameters())

    assert count(model.final_resnet) == count(r18)
    assert count(model.resnet) == count(model.resnet2) == count(r50)
    assert [n.num_layers for n in model.snapshot] == [50, 50]
    assert count(model) == 2 * count(r50) + count(r18)
    assert "final_resnet.layer4.1.conv2.weight" in model.state_dict()
    assert "final_resnet.layer4.1.conv3.weight" not in model.state_dict()  # basic blocks
    assert "resnet.layer4.2.conv3.weight" in model.state_dict()  # bottlenecks


def test_student_pretrained_file_initialises_the_student_only(tmp_path):
    conv1 = torch.full((64, 3, 7, 7), 0.25)
    torch.save({"state_dict": {"conv1.weight": conv1}}, tmp_path / "student.pth")
    _, model = _tiny_model("MODEL.INIT_WEIGHTS", "True",
                           "SSPCM.STUDENT_PRETRAINED", str(tmp_path / "student.pth"))
    assert torch.equal(model.final_resnet.conv1.weight, conv1)
    assert not torch.equal(model.resnet.conv1.weight, conv1)


def test_student_from_a_posedual_pair_file_takes_its_resnet_backbone(tmp_path):
    # the R50/R18 recipe's student file is resnet18_5c_gluon_posedual.pth: two ResNet-18s under
    # resnet. and resnet2.; the student takes the resnet. one, as the published prefix strip does
    first, second = torch.full((64, 3, 7, 7), 0.25), torch.full((64, 3, 7, 7), -0.5)
    torch.save({"resnet.conv1.weight": first, "resnet2.conv1.weight": second},
               tmp_path / "pair.pth")
    _, model = _tiny_model("MODEL.INIT_WEIGHTS", "True",
                           "SSPCM.STUDENT_PRETRAINED", str(tmp_path / "pair.pth"))
    assert torch.equal(model.final_resnet.conv1.weight, first)
    recipe = load_config(str(REPO / "experiments/sspcm/res50_res18_256x192_COCO1K_SSPCM.yaml"))
    assert recipe.SSPCM.STUDENT_PRETRAINED.endswith("resnet18_5c_gluon_posedual.pth")


def test_student_depth_needs_a_resnet():
    cfg = load_config(str(REPO / "experiments/mix_coco_coco/hrnet/"
                          "w48_384x288_COCO_COCOunlabel_PoseDual_JointCut5.yaml"),
                      ["MODEL.NAME", "sspcm", "MODEL.BACKBONE", "hrnet",
                       "SSPCM.STUDENT_NUM_LAYERS", "18"])
    with pytest.raises(ConfigError, match="STUDENT_NUM_LAYERS"), torch.device("meta"):
        SSPCMMethod(cfg).build_model(is_train=False)


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def coco_root(wild_coco):
    """A tiny synthetic COCO set plus an ``unlabeled2017`` view of its train images (WILD)."""
    return wild_coco("coco_sspcm", num_val=3, seed=4)


def _run(cfg_file, opts, tmp_path):
    args = types.SimpleNamespace(cfg=cfg_file, opts=opts, distributed=False, local_rank=-1)
    cfg = update_config(get_cfg(), args)
    args.cfg = cfg_file or "sspcm_tiny.yaml"  # names the run folder
    return launch.do_train(cfg, args)


def _tiny_opts(root, train_dets, tmp_path, epochs):
    """A two-image SSPCM run on the tiny COCO set: SSCO, flip test, GT boxes."""
    return [
        "OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log"),
        "WORKERS", "0", "PRINT_FREQ", "1", "DEVICE", "cpu", *SMALL,
        "MODEL.IMAGE_SIZE", "[64, 96]", "MODEL.EXTRA.HEATMAP_SIZE", "[16, 24]",
        "MODEL.EXTRA.SIGMA", "1", "DATASET.ROOT", str(root),
        "DATASET.TRAIN_DATASET", "mix_coco_coco", "DATASET.TEST_DATASET", "coco",
        "DATASET.TRAIN_SET", "train", "DATASET.TEST_SET", "validation", "DATASET.TRAIN_LEN", "3",
        "HARD_AUG.OPS", "['SSCO']", "SSPCM.SCORE_THRE", "0.0",
        "TRAIN.BATCH_SIZE", "2", "TRAIN.END_EPOCH", str(epochs), "TRAIN.MAX_ITERS", "1",
        "TRAIN.LR_STEP", "[1]", "TEST.BATCH_SIZE", "4", "TEST.USE_GT_BBOX", "True",
        "TEST.FLIP_TEST", "True", "TEST.COCO_BBOX_FILE", train_dets,
    ]  # fmt: skip


def test_trains_two_iterations_with_pcm_and_validates(coco_root, tmp_path):
    root, train_dets = coco_root
    opts = _tiny_opts(root, train_dets, tmp_path, epochs=2)
    out = _run(None, opts, tmp_path)
    epochs = read_metrics(out["output_dir"], kind="epoch")
    iters = read_metrics(out["output_dir"], kind="iter")
    assert [r["epoch"] for r in epochs] == [0, 1] and len(iters) == 2
    assert all(r["loss_cons_student"] > 0 and r["loss_cons"] > r["loss_cons_student"]
               for r in iters)
    assert set(epochs[1]["ap"]) == {"net1", "net2", "student", "ensemble", "ensemble3"}
    assert epochs[1]["ap"]["net1"] == pytest.approx(out["last"]["net1"]["AP"], abs=1e-12)
    assert out["last"]["heads"] == ("net1", "net2", "student", "ensemble", "ensemble3")
    assert set(epochs[1]["collapse"]) == {"net1", "net2", "student"}
    state = unwrap_state_dict(load_checkpoint(str(Path(out["output_dir"]) / "final_state.pth.tar")))
    assert {k.split(".")[0] for k in state} == {"resnet", "resnet2", "final_resnet"}



def test_train_compile_compiles_all_three_networks(coco_root, tmp_path, monkeypatch):
    """TRAIN.COMPILE compiles the networks the method declares: A, B and the student C (compile
    observed, not run), and nothing else of the model."""
    root, train_dets = coco_root
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append(self))
    seen = {}
    build = SSPCMMethod.build_model

    def keep(self, is_train):
        seen["model"] = model = build(self, is_train)
        return model

    monkeypatch.setattr(SSPCMMethod, "build_model", keep)
    opts = _tiny_opts(root, train_dets, tmp_path, epochs=1)
    opts += ["TRAIN.COMPILE", "True", "TEST.FLIP_TEST", "False"]
    _run(None, opts, tmp_path)
    model = seen["model"]
    assert [id(m) for m in compiled] == [id(model.resnet), id(model.resnet2),
                                         id(model.final_resnet)]


def test_three_sspcm_yamls_exist():
    assert len(SSPCM_YAMLS) == 3
    for path in SSPCM_YAMLS:
        text = (REPO / path).read_text()
        assert "Reproduces:" in text and "Table" in text and "Recipe:" in text


@pytest.mark.parametrize("yaml_file", SSPCM_YAMLS)
def test_sspcm_yaml_trains_one_iteration(yaml_file, coco_root, tmp_path):
    root, train_dets = coco_root
    opts = [
        "OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log"),
        "WORKERS", "0", "DEVICE", "cpu", "PRINT_FREQ", "1",
        "MODEL.PRETRAINED", "", "SSPCM.STUDENT_PRETRAINED", "", "MODEL.INIT_WEIGHTS", "False",
        "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.EXTRA.HEATMAP_SIZE", "[16, 16]",
        "DATASET.ROOT", str(root), "DATASET.TRAIN_LEN", "3", "DATASET.DATA_FORMAT", "jpg",
        "TRAIN.BATCH_SIZE", "2", "TRAIN.END_EPOCH", "1", "TRAIN.MAX_ITERS", "1",
        "TEST.BATCH_SIZE", "8", "TEST.COCO_BBOX_FILE", train_dets,
    ]  # fmt: skip
    out = _run(str(REPO / yaml_file), opts, tmp_path)
    assert out["epochs"] == 1
    assert (Path(out["output_dir"]) / "checkpoint.pth.tar").is_file()
    assert np.isfinite(out["last"]["perf"])
    assert out["last"]["heads"][0] == "net1"

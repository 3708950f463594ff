"""Model registry: ``MODELS`` (MODEL.NAME → builder) and ``build_model(cfg, is_train)``.

Ported from the ``get_pose_net`` functions of the original's
lib/models/pose_{resnet,hrnet,dual,cons}.py (MIT). The builders translate the config into keyword
arguments; the model classes never see it.
"""

import logging

from semipose.dataset.joints import COCO_TRAINED, MPII_TRAINED
from semipose.models.pose_cons import PoseCons
from semipose.models.pose_dual import PoseDual
from semipose.models.pose_hrnet import PoseHighResolutionNet
from semipose.models.pose_resnet import PoseResNet
from semipose.utils.checkpoint import load_checkpoint, unwrap_state_dict

logger = logging.getLogger(__name__)

__all__ = [
    "MODELS",
    "TRAINED_JOINTS",
    "build_model",
    "compile_networks",
    "resnet_kwargs",
    "hrnet_kwargs",
    "semi_kwargs",
]

# TRAIN_DATASET -> union channels the labeled dataset trains (the fix of MASK_JOINT_FIX draws among
# them)
TRAINED_JOINTS = {
    "coco": COCO_TRAINED,
    "mix_coco_coco": COCO_TRAINED,
    "mpii": MPII_TRAINED,
    "mix_mpii_ai": MPII_TRAINED,
}


def resnet_kwargs(cfg):
    """PoseResNet keyword arguments from MODEL / MODEL.EXTRA."""
    if cfg.MODEL.STYLE != "pytorch":
        raise ValueError(
            f"MODEL.STYLE {cfg.MODEL.STYLE!r} is not supported (only 'pytorch'; the "
            "original's 'caffe' block is broken)"
        )
    if cfg.MODEL.GROUPS != 1 or cfg.MODEL.WIDTH_PER_GROUP != 64:
        raise NotImplementedError("MODEL.GROUPS/WIDTH_PER_GROUP other than 1/64 are not supported")
    extra = cfg.MODEL.EXTRA
    if "NUM_LAYERS" not in extra:
        raise ValueError("MODEL.EXTRA.NUM_LAYERS is required for a ResNet backbone")
    return dict(
        num_layers=extra.NUM_LAYERS,
        num_joints=cfg.MODEL.NUM_JOINTS,
        deconv_with_bias=extra.get("DECONV_WITH_BIAS", False),
        num_deconv_layers=extra.get("NUM_DECONV_LAYERS", 3),
        num_deconv_filters=tuple(extra.get("NUM_DECONV_FILTERS", (256, 256, 256))),
        num_deconv_kernels=tuple(extra.get("NUM_DECONV_KERNELS", (4, 4, 4))),
        final_conv_kernel=extra.get("FINAL_CONV_KERNEL", 1),
    )


def _stage(node):
    return dict(
        num_modules=node.NUM_MODULES,
        num_branches=node.NUM_BRANCHES,
        block=node.BLOCK,
        num_blocks=list(node.NUM_BLOCKS),
        num_channels=list(node.NUM_CHANNELS),
        fuse_method=node.FUSE_METHOD,
    )


def hrnet_kwargs(cfg):
    """PoseHighResolutionNet keyword arguments from MODEL.EXTRA.STAGE2..4."""
    extra = cfg.MODEL.EXTRA
    absent = [k for k in ("STAGE2", "STAGE3", "STAGE4") if k not in extra]
    if absent:
        raise ValueError(f"MODEL.EXTRA lacks {absent}, required for an HRNet backbone")
    return dict(
        num_joints=cfg.MODEL.NUM_JOINTS,
        stage2=_stage(extra.STAGE2),
        stage3=_stage(extra.STAGE3),
        stage4=_stage(extra.STAGE4),
        stem_inplanes=extra.get("STEM_INPLANES", 64),
        final_conv_kernel=extra.get("FINAL_CONV_KERNEL", 1),
    )


def semi_kwargs(cfg):
    """Hard-augmentation keyword arguments shared by PoseDual and PoseCons."""
    return dict(
        scale_factor=cfg.DATASET.SCALE_FACTOR,
        rotation_factor=cfg.DATASET.ROT_FACTOR,
        mask_joint_num=cfg.MASK_JOINT_NUM,
        mask_joint_fix=cfg.MASK_JOINT_FIX,
        trained_joints=TRAINED_JOINTS.get(cfg.DATASET.TRAIN_DATASET),
        unsup_transform=cfg.UNSUP_TRANSFORM,
        cons_rand_aug=cfg.CONS_RAND_AUG,
        same_view=cfg.CONS_SAME_VIEW,
        hard_teacher=cfg.CONS_HARD_TEACHER,
        mask_joint_relative=cfg.MASK_JOINT_RELATIVE,
    )


def _pretrained_state(cfg, is_train):
    """MODEL.PRETRAINED loaded once, or None (random init with a warning, or evaluation)."""
    if not is_train:
        return None
    if not cfg.MODEL.INIT_WEIGHTS:
        if cfg.MODEL.PRETRAINED:
            logger.warning(
                "MODEL.INIT_WEIGHTS is False: ignoring MODEL.PRETRAINED=%s", cfg.MODEL.PRETRAINED
            )
        return None
    if not cfg.MODEL.PRETRAINED:
        return None
    return unwrap_state_dict(load_checkpoint(cfg.MODEL.PRETRAINED))


def _backbone(cfg, *, head_name, feature, return_features, prm=False):
    if cfg.MODEL.NAME in ("pose_dual", "pose_cons"):
        backbone = cfg.MODEL.BACKBONE
    else:
        backbone = "hrnet" if cfg.MODEL.NAME == "pose_hrnet" else "resnet"
    if backbone == "resnet":
        return PoseResNet(
            **resnet_kwargs(cfg),
            head_name=head_name,
            feature=feature,
            return_features=return_features,
            prm=prm,
        )
    if backbone == "hrnet":
        return PoseHighResolutionNet(**hrnet_kwargs(cfg), return_features=return_features, prm=prm)
    raise ValueError(f"MODEL.BACKBONE must be 'resnet' or 'hrnet', got {backbone!r}")


def _init(net, cfg, is_train, state):
    """Initialises one network (nothing when not training, as the original)."""
    if not is_train:
        return
    if isinstance(net, PoseHighResolutionNet):
        layers = tuple(cfg.MODEL.EXTRA.get("PRETRAINED_LAYERS", ("*",)))
        net.init_weights(state if state is not None else "", pretrained_layers=layers)
    else:
        net.init_weights(state if state is not None else "")


def build_pose_resnet(cfg, is_train):
    net = _backbone(
        cfg, head_name="final_layer", feature="deconv", return_features=False, prm=cfg.MODEL.PRM
    )
    _init(net, cfg, is_train, _pretrained_state(cfg, is_train))
    return net


def build_pose_hrnet(cfg, is_train):
    net = _backbone(
        cfg, head_name="final_layer", feature="deconv", return_features=False, prm=cfg.MODEL.PRM
    )
    _init(net, cfg, is_train, _pretrained_state(cfg, is_train))
    return net


def build_pose_cons(cfg, is_train):
    net = _backbone(cfg, head_name="final_layer", feature="deconv", return_features=True)
    _init(net, cfg, is_train, _pretrained_state(cfg, is_train))
    return PoseCons(net, **semi_kwargs(cfg))


def build_pose_dual(cfg, is_train):
    state = _pretrained_state(cfg, is_train)
    nets = [
        _backbone(cfg, head_name="final_layer_1", feature="layer4", return_features=True)
        for _ in range(2)
    ]
    for net in nets:
        _init(net, cfg, is_train, state)
    model = PoseDual(nets[0], nets[1], **semi_kwargs(cfg))
    if state is not None and "resnet2.conv1.weight" in state:
        # A pose_dual initialisation file: each net gets its own weights (e.g. two different
        # ImageNet
        # ResNet-18s under resnet./resnet2.).
        own = model.state_dict()
        pair = {
            k: v
            for k, v in state.items()
            if k.startswith(("resnet.", "resnet2.")) and ".fc." not in k and k in own
        }
        model.load_state_dict(pair, strict=False)
        logger.info(
            "pose_dual: loaded %d resnet./resnet2. entries from %s", len(pair), cfg.MODEL.PRETRAINED
        )
    return model


# MODEL.NAME -> builder(cfg, is_train)
MODELS = {
    "pose_resnet": build_pose_resnet,
    "pose_hrnet": build_pose_hrnet,
    "pose_cons": build_pose_cons,
    "pose_dual": build_pose_dual,
}


def build_model(cfg, is_train):
    """Builds ``cfg.MODEL.NAME``; with ``is_train`` also initialises it (MODEL.INIT_WEIGHTS and a
    non-empty MODEL.PRETRAINED load the file, otherwise random init with a warning).

    Raises:
        KeyError: an unknown MODEL.NAME (the message lists the registered ones).
        FileNotFoundError: MODEL.PRETRAINED names a missing file.
    """
    name = cfg.MODEL.NAME
    if name not in MODELS:
        raise KeyError(f"unknown MODEL.NAME {name!r}; registered: {sorted(MODELS)}")
    return MODELS[name](cfg, is_train)


def compile_networks(model, **options):
    """Compiles the pose networks of ``model`` in place (``nn.Module.compile``) and returns it.

    For PoseDual and PoseCons only the networks (``resnet``, ``resnet2``) are compiled: the hard
    augmentation around them draws host random numbers as the original does and stays eager, so the
    compiled graphs have no breaks. In-place compilation keeps the parameter names, so checkpoints
    and ``state_dict`` keys are those of the uncompiled model.

    Args:
        model: a model from ``build_model``.
        **options: passed to ``torch.compile`` (e.g. ``mode``, ``backend``).
    """
    nets = [getattr(model, name) for name in ("resnet", "resnet2") if hasattr(model, name)]
    for net in nets or [model]:
        net.compile(**options)
    return model

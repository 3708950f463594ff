"""Network builders: the backbone registry ``BACKBONES`` and the config → keyword-argument
translators used by the methods (``semipose.methods``), which assemble whole models.

Ported from the ``get_pose_net`` functions of the original's
lib/models/pose_{resnet,hrnet,dual,cons}.py (MIT). The model classes never see the config.
"""

import logging

from semipose.checkpoint.files import load_checkpoint, unwrap_state_dict
from semipose.common.hard_aug import setting_values
from semipose.dataset.build import dataset_trained_joints
from semipose.models.pose_hrnet import PoseHighResolutionNet
from semipose.models.pose_lite import PoseLite
from semipose.models.pose_resnet import PoseResNet

logger = logging.getLogger(__name__)

__all__ = [
    "BACKBONES",
    "build_backbone",
    "compile_networks",
    "hrnet_kwargs",
    "init_network",
    "load_pair_state",
    "pretrained_state",
    "resnet_kwargs",
    "semi_kwargs",
]

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
        base_width=extra.get("BASE_WIDTH", 64),
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
    """Hard-view keyword arguments shared by PoseDual, PoseCons and SSPCM: the view settings, the
    op sequence (or the multi-path list) and every declared op setting
    (``semipose.common.hard_aug``, read from its config key)."""
    return dict(
        scale_factor=cfg.DATASET.SCALE_FACTOR,
        rotation_factor=cfg.DATASET.ROT_FACTOR,
        # the channels the labeled set trains (MASK_JOINT_FIX draws among them), from the registry
        trained_joints=dataset_trained_joints(cfg),
        unsup_transform=cfg.UNSUP_TRANSFORM,
        cons_rand_aug=cfg.CONS_RAND_AUG,
        same_view=cfg.CONS_SAME_VIEW,
        hard_teacher=cfg.CONS_HARD_TEACHER,
        hard_ops=tuple(cfg.HARD_AUG.OPS),
        hard_paths=tuple(tuple(path) for path in cfg.HARD_AUG.PATHS),
        **setting_values(cfg),
    )


def pretrained_state(cfg, is_train):
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


def load_pair_state(model, state, source, names, layers=None):
    """Loads the two networks of a two-network initialisation file (e.g.
    ``resnet18_5c_gluon_posedual.pth``: two different ImageNet ResNet-18s, under the keys of the
    model's networks ``names``) into ``model`` so that each network gets its own weights; ``.fc.``
    entries and keys the model lacks are skipped. A PoseLite network loads the modules ``layers``
    of its entries (``MODEL.EXTRA.PRETRAINED_LAYERS``; None: the encoder). Nothing when ``state``
    is None or holds no entries of the second network.

    Args:
        model: a module with the two networks ``names``.
        state: the loaded MODEL.PRETRAINED state_dict, or None.
        source: the file's name, for the log line.
        names: the attribute names of the two networks (``Method.network_attrs``), which are
            also their key prefixes in the file.
        layers: PoseLite's modules to load.
    """
    prefixes = tuple(name + "." for name in names)
    if state is None or not any(k.startswith(prefixes[-1]) for k in state):
        return
    if isinstance(getattr(model, names[0], None), PoseLite):
        for name, prefix in zip(names, prefixes):
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            getattr(model, name).load_pretrained(sub, layers)
        logger.info("loaded the %s networks of %s into net 1 and net 2",
                    " and ".join(prefixes), source)
        return
    own = model.state_dict()
    pair = {
        k: v for k, v in state.items() if k.startswith(prefixes) and ".fc." not in k and k in own
    }
    model.load_state_dict(pair, strict=False)
    logger.info("loaded %d %s entries from %s", len(pair), "/".join(prefixes), source)


# backbone name -> (network class, keyword arguments from the config)
def lite_kwargs(cfg):
    """PoseLite keyword arguments: MODEL.EXTRA.BASE_WIDTH channels at stride 4 and the last of
    MODEL.EXTRA.NUM_DECONV_FILTERS as the decoder width."""
    extra = cfg.MODEL.EXTRA
    return dict(
        num_joints=cfg.MODEL.NUM_JOINTS,
        width=extra.get("BASE_WIDTH", 32),
        decoder_width=list(extra.get("NUM_DECONV_FILTERS", (64,)))[-1],
    )


BACKBONES = {
    "resnet": (PoseResNet, resnet_kwargs),
    "hrnet": (PoseHighResolutionNet, hrnet_kwargs),
    "lite": (PoseLite, lite_kwargs),
}


def build_backbone(cfg, backbone, *, head_name="final_layer", prm=False):
    """One pose network: ``backbone`` ('resnet' or 'hrnet') configured from ``cfg.MODEL``.

    Args:
        head_name: attribute name of the final 1x1 conv (``final_layer_1`` in PoseDual's nets,
            as the original's key names).
        prm: add the pose refine machine (MODEL.PRM).

    Raises:
        ValueError: an unknown backbone name.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"MODEL.BACKBONE must be one of {sorted(BACKBONES)}, got {backbone!r}")
    cls, kwargs = BACKBONES[backbone]
    if cls is PoseLite:
        if prm:
            raise ValueError("MODEL.PRM is not available with the lite backbone")
        return cls(**kwargs(cfg), head_name=head_name)
    extra = {"head_name": head_name} if cls is PoseResNet else {}
    return cls(**kwargs(cfg), prm=prm, **extra)


def init_network(net, cfg, is_train, state):
    """Initialises one network from ``state`` (a state_dict or None for random init); nothing when
    not training, as the original."""
    if not is_train:
        return
    if isinstance(net, PoseHighResolutionNet):
        layers = tuple(cfg.MODEL.EXTRA.get("PRETRAINED_LAYERS", ("*",)))
        net.init_weights(state if state is not None else "", pretrained_layers=layers)
    elif isinstance(net, PoseLite):
        layers = cfg.MODEL.EXTRA.get("PRETRAINED_LAYERS")  # None: the encoder
        net.init_weights(state if state is not None else "", pretrained_layers=layers)
    else:
        net.init_weights(state if state is not None else "")


def compile_networks(networks, **options):
    """Compiles each of ``networks`` in place (``nn.Module.compile``).

    The caller passes the method's pose networks (``Method.networks(model).values()``): for the
    semi-supervised models only the networks are compiled, the hard augmentation around them draws
    host random numbers as the original does and stays eager, so the compiled graphs have no
    breaks. In-place compilation keeps the parameter names, so checkpoints and ``state_dict`` keys
    are those of the uncompiled model.

    Args:
        networks: the modules to compile.
        **options: passed to ``torch.compile`` (e.g. ``mode``, ``backend``).

    Returns:
        The list of the compiled modules.
    """
    networks = list(networks)
    for net in networks:
        net.compile(**options)
    return networks

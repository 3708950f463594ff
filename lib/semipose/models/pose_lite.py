"""PoseLite (ours): a light encoder-decoder for CPU runs from random initialisation.

SimpleBaseline's ResNet goes down to stride 32 and back up with deconvolutions and no skips, so
at the demo's 96x64 input every joint position must pass through a 3x2 feature map; trained from
scratch it leaves the all-background plateau slowly. PoseLite stops at stride 16 and brings the
stride-8 and stride-4 features back through lateral 1x1 convolutions (an FPN-style decoder), so
position reaches the head directly while the deep features carry what is where.

Shapes: input (N, 3, H, W) → heatmap (N, K, H/4, W/4).
"""
import logging
from collections.abc import Mapping

import torch.nn.functional as F
from torch import nn

from semipose.checkpoint.files import load_pretrained_state
from semipose.models.pose_resnet import BN_MOMENTUM, BasicBlock, make_res_layer

logger = logging.getLogger(__name__)

__all__ = ["PoseLite"]


def _conv_bn_relu(cin, cout, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )


class PoseLite(nn.Module):
    """Stem (stride 2) → three residual stages (strides 4, 8, 16) → top-down decoder to stride 4.

    Args:
        num_joints: K heatmap channels.
        width: channels of the stride-4 stage; the next stages have 2x and 4x as many.
        blocks: residual blocks per stage.
        decoder_width: channels of the decoder.
        head_name: attribute name of the heatmap conv (``final_layer`` or ``final_layer_1``, as
            the ResNet's, so PoseDual/PoseCons wrap it unchanged).
    """

    def __init__(self, num_joints=24, *, width=32, blocks=(1, 2, 2), decoder_width=64,
                 head_name="final_layer"):
        super().__init__()
        if len(blocks) != 3 or min(blocks) < 1 or width < 1:
            raise ValueError(f"PoseLite needs 3 positive stage depths and width >= 1, got "
                             f"{blocks}, {width}")
        self.head_name = head_name
        self.stem = nn.Sequential(_conv_bn_relu(3, width // 2, 2), _conv_bn_relu(width // 2, width))
        chans = (width, 2 * width, 4 * width)
        stages, cin = [], width
        for c, n in zip(chans, blocks):
            layer, cin = make_res_layer(cin, BasicBlock, c, n, stride=2)
            stages.append(layer)
        self.stage1, self.stage2, self.stage3 = stages
        self.lateral = nn.ModuleList(nn.Conv2d(c, decoder_width, 1) for c in chans)
        self.smooth = nn.ModuleList(_conv_bn_relu(decoder_width, decoder_width) for _ in range(2))
        setattr(self, head_name, nn.Conv2d(decoder_width, num_joints, 1))
        self.init_weights()

    @property
    def head(self):
        return getattr(self, self.head_name)

    def forward(self, x):
        """Args: x (N, 3, H, W). Returns the heatmap (N, K, H/4, W/4)."""
        c1 = self.stage1(self.stem(x))  # stride 4
        c2 = self.stage2(c1)  # stride 8
        c3 = self.stage3(c2)  # stride 16
        p = self.lateral[2](c3)
        for feat, lateral, smooth in ((c2, self.lateral[1], self.smooth[0]),
                                      (c1, self.lateral[0], self.smooth[1])):
            p = smooth(lateral(feat) + F.interpolate(p, size=feat.shape[-2:], mode="nearest"))
        return self.head(p)

    #: Modules of the encoder: what a pretrained file initialises by default (as an ImageNet file
    #: initialises a ResNet's backbone and not its deconvolutions or head).
    ENCODER = ("stem", "stage1", "stage2", "stage3")

    def init_weights(self, pretrained="", pretrained_layers=None):
        """Kaiming-normal convolutions, BatchNorm 1/0, the head N(0, 0.001) with zero bias; then,
        with ``pretrained``, the modules ``pretrained_layers`` from that file.

        Args:
            pretrained: '' (random initialisation), a checkpoint path or a loaded state_dict (bare,
                or under ``'state_dict'``; ``module.`` is stripped and ``resnet.`` entries are
                used without the prefix, so a PoseLite trained alone, or net 1 of a PoseDual run,
                both work).
            pretrained_layers: the top-level modules loaded from ``pretrained``
                (``MODEL.EXTRA.PRETRAINED_LAYERS``): None = the encoder (``ENCODER``; the decoder,
                ``lateral`` and ``smooth``, and the head stay freshly initialised), ``['*']`` =
                every module, the head included (a head saved as ``final_layer`` or
                ``final_layer_1`` loads into this network's head, whatever its name).

        Raises:
            FileNotFoundError: ``pretrained`` is a path that does not exist.
            ValueError: the file has none of those modules' entries, or entries of another shape
                (e.g. another ``MODEL.EXTRA.BASE_WIDTH``); the message names the first.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)
        if isinstance(pretrained, Mapping) or pretrained:
            self.load_pretrained(pretrained, pretrained_layers)

    def load_pretrained(self, pretrained, layers=None):
        """Loads the modules ``layers`` (None: the encoder) of ``pretrained`` into this network
        (``init_weights`` without the re-initialisation)."""
        source = "the given state_dict" if isinstance(pretrained, Mapping) else pretrained
        state = load_pretrained_state(pretrained)
        own = self.state_dict()
        layers = tuple(layers or self.ENCODER)
        # a head saved as final_layer (a single network) or final_layer_1 (PoseDual's) is this
        # network's head, whatever its name here
        heads = ("final_layer.", "final_layer_1.")
        state = {(self.head_name + "." + k.split(".", 1)[1] if k.startswith(heads) else k): v
                 for k, v in state.items()}

        def wanted(key):
            return "*" in layers or key.split(".", 1)[0] in layers

        encoder = {k: v for k, v in state.items() if wanted(k) and k in own}
        if not encoder:
            raise ValueError(
                f"PoseLite: {source} has no entries of {', '.join(layers)}; its first keys: "
                f"{list(state)[:5]}"
            )
        for key, value in encoder.items():
            if value.shape != own[key].shape:
                raise ValueError(
                    f"PoseLite: {source} entry {key} has shape {tuple(value.shape)}, this network "
                    f"{tuple(own[key].shape)} (another MODEL.EXTRA.BASE_WIDTH?)"
                )
        missing = [k for k in own if wanted(k) and k not in encoder]
        self.load_state_dict(encoder, strict=False)
        if missing:
            logger.warning("PoseLite: %d entries of %s not in %s: %s", len(missing),
                           ", ".join(layers), source, missing[:10])
        logger.info("PoseLite: loaded %d entries (%s) from %s", len(encoder), ", ".join(layers),
                    source)

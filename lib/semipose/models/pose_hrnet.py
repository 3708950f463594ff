"""HRNet for pose estimation (``PoseHighResolutionNet``): parallel branches, repeated fusion.

Ported from the original's lib/models/pose_hrnet.py (MIT). Module names are the original's
(``transition1..3``, ``stage2..4``, ``branches``, ``fuse_layers``, ``final_layer``) so the released
checkpoints load with strict checking. The stage layout comes in as plain keyword dictionaries.
"""

import logging
from collections.abc import Mapping

from torch import nn

from semipose.checkpoint.files import load_pretrained_state
from semipose.models.pose_resnet import (
    BN_MOMENTUM,
    BasicBlock,
    Bottleneck,
    init_conv_bn_,
    make_res_layer,
)

logger = logging.getLogger(__name__)

__all__ = ["HighResolutionModule", "PoseHighResolutionNet", "BLOCKS"]

BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}

_STAGE_FIELDS = (
    "num_modules",
    "num_branches",
    "block",
    "num_blocks",
    "num_channels",
    "fuse_method",
)


def _bn(channels):
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


def _conv3x3(cin, cout, stride):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class HighResolutionModule(nn.Module):
    """One exchange unit: ``num_branches`` parallel block stacks, then all-to-all fusion + ReLU.

    Args:
        num_branches: parallel resolutions (branch i has stride 2^i relative to branch 0).
        block: BasicBlock or Bottleneck.
        num_blocks: blocks per branch.
        num_inchannels: input channels per branch (updated in place to the output channels).
        num_channels: block planes per branch.
        fuse_method: only ``'SUM'``.
        multi_scale_output: if False, only the highest-resolution output is produced
            (``fuse_layers`` has a single row).

    Shapes:
        list of (N, C_i, H/2^i, W/2^i) → list of the same (or a one-element list).
    """

    def __init__(
        self,
        num_branches,
        block,
        num_blocks,
        num_inchannels,
        num_channels,
        fuse_method="SUM",
        multi_scale_output=True,
    ):
        super().__init__()
        if not (len(num_blocks) == len(num_inchannels) == len(num_channels) == num_branches):
            raise ValueError(
                f"HRNet module: num_branches={num_branches} but num_blocks={list(num_blocks)}, "
                f"num_inchannels={list(num_inchannels)}, num_channels={list(num_channels)}"
            )
        if fuse_method != "SUM":
            raise ValueError(f"unsupported FUSE_METHOD {fuse_method!r} (only 'SUM')")
        self.num_branches = num_branches
        self.num_inchannels = num_inchannels
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            self._make_one_branch(i, block, num_blocks, num_channels) for i in range(num_branches)
        )
        self.fuse_layers = self._make_fuse_layers()
        self.relu = nn.ReLU(inplace=True)

    def _make_one_branch(self, index, block, num_blocks, num_channels):
        cin = self.num_inchannels[index]
        cout = num_channels[index] * block.expansion
        downsample = None
        if cin != cout:
            downsample = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, bias=False), _bn(cout))
        layers = [block(cin, num_channels[index], 1, downsample)]
        self.num_inchannels[index] = cout
        layers += [block(cout, num_channels[index]) for _ in range(1, num_blocks[index])]
        return nn.Sequential(*layers)

    def _make_fuse_layers(self):
        if self.num_branches == 1:
            return None
        chans = self.num_inchannels
        rows = []
        for i in range(self.num_branches if self.multi_scale_output else 1):
            row = []
            for j in range(self.num_branches):
                if j > i:
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(chans[j], chans[i], kernel_size=1, bias=False),
                            _bn(chans[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        if k == i - j - 1:
                            steps.append(
                                nn.Sequential(_conv3x3(chans[j], chans[i], 2), _bn(chans[i]))
                            )
                        else:
                            steps.append(
                                nn.Sequential(
                                    _conv3x3(chans[j], chans[j], 2),
                                    _bn(chans[j]),
                                    nn.ReLU(inplace=True),
                                )
                            )
                    row.append(nn.Sequential(*steps))
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def forward(self, x):
        """Args: x, a list of ``num_branches`` tensors. Returns the fused list."""
        if self.num_branches == 1:
            return [self.branches[0](x[0])]
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = x[0] if i == 0 else row[0](x[0])
            for j in range(1, self.num_branches):
                y = y + (x[j] if i == j else row[j](x[j]))
            fused.append(self.relu(y))
        return fused


class PoseHighResolutionNet(nn.Module):
    """HRNet-pose: two 3x3/2 stem convs, ``layer1``, stages 2-4, a 1x1 head on branch 0.

    Args:
        num_joints: K, the heatmap channels.
        stage2, stage3, stage4: dicts with ``num_modules``, ``num_branches``, ``block`` ('BASIC' or
            'BOTTLENECK'), ``num_blocks``, ``num_channels``, ``fuse_method`` (the YAML's STAGEk,
            lower-cased by the builder). W48: channels [48, 96, 192, 384], modules 1/4/3.
        stem_inplanes: stem channels (64).
        final_conv_kernel: head kernel (1 or 3).
        prm: the original's optional PRM module; not implemented.

    Shapes:
        input (N, 3, H_in, W_in) → heatmap (N, K, H_in/4, W_in/4). H_in/4 and W_in/4 must stay
        integral through three further halvings (e.g. 256x192, 384x288, 64x64).
    """

    def __init__(
        self,
        num_joints=24,
        *,
        stage2,
        stage3,
        stage4,
        stem_inplanes=64,
        final_conv_kernel=1,
        prm=False,
    ):
        super().__init__()
        if prm:
            raise NotImplementedError(
                "MODEL.PRM=True (the original's PRM attention module) is not implemented; "
                "no experiment YAML uses it. Set MODEL.PRM False."
            )
        stages = {"stage2": stage2, "stage3": stage3, "stage4": stage4}
        for name, spec in stages.items():
            absent = [f for f in _STAGE_FIELDS if f not in spec]
            if absent:
                raise ValueError(f"HRNet {name} spec lacks {absent}")
            if spec["block"] not in BLOCKS:
                raise ValueError(
                    f"HRNet {name}: unknown block {spec['block']!r}, expected {list(BLOCKS)}"
                )
        self.inplanes = stem_inplanes

        self.conv1 = _conv3x3(3, stem_inplanes, 2)
        self.bn1 = _bn(stem_inplanes)
        self.conv2 = _conv3x3(stem_inplanes, stem_inplanes, 2)
        self.bn2 = _bn(stem_inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(Bottleneck, 64, 4)

        pre = [256]
        for index, name in ((1, "stage2"), (2, "stage3"), (3, "stage4")):
            spec = stages[name]
            block = BLOCKS[spec["block"]]
            chans = [c * block.expansion for c in spec["num_channels"]]
            setattr(self, f"transition{index}", self._make_transition_layer(pre, chans))
            stage, pre = self._make_stage(spec, chans, multi_scale_output=name != "stage4")
            setattr(self, name, stage)
        self.stage_branches = [
            stage2["num_branches"],
            stage3["num_branches"],
            stage4["num_branches"],
        ]

        self.final_layer = nn.Conv2d(
            pre[0],
            num_joints,
            kernel_size=final_conv_kernel,
            stride=1,
            padding=1 if final_conv_kernel == 3 else 0,
        )

    def _make_layer(self, block, planes, blocks, stride=1):
        layer, self.inplanes = make_res_layer(self.inplanes, block, planes, blocks, stride)
        return layer

    @staticmethod
    def _make_transition_layer(pre, cur):
        """Adapts ``len(pre)`` branches to ``len(cur)``.

        An existing branch gets a 3x3 conv where its channels change (None otherwise); each new,
        lower-resolution branch gets a chain of 3x3/2 convs fed by the last old branch.
        """
        layers = []
        for i, cout in enumerate(cur):
            if i < len(pre):
                if cout != pre[i]:
                    layers.append(
                        nn.Sequential(_conv3x3(pre[i], cout, 1), _bn(cout), nn.ReLU(inplace=True))
                    )
                else:
                    layers.append(None)
            else:
                steps = []
                for j in range(i + 1 - len(pre)):
                    cin = pre[-1]
                    out = cout if j == i - len(pre) else cin
                    steps.append(
                        nn.Sequential(_conv3x3(cin, out, 2), _bn(out), nn.ReLU(inplace=True))
                    )
                layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    @staticmethod
    def _make_stage(spec, num_inchannels, multi_scale_output=True):
        block = BLOCKS[spec["block"]]
        modules = []
        n = spec["num_modules"]
        for i in range(n):
            modules.append(
                HighResolutionModule(
                    spec["num_branches"],
                    block,
                    list(spec["num_blocks"]),
                    num_inchannels,
                    list(spec["num_channels"]),
                    spec["fuse_method"],
                    multi_scale_output=multi_scale_output or i < n - 1,
                )
            )
            num_inchannels = modules[-1].num_inchannels
        return nn.Sequential(*modules), num_inchannels

    def forward(self, x):
        """Args: x (N, 3, H_in, W_in). Returns the heatmap (N, K, H_in/4, W_in/4)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        y_list = [x]
        for index, branches in zip((1, 2, 3), self.stage_branches):
            transition = getattr(self, f"transition{index}")
            x_list = []
            for i in range(branches):
                if transition[i] is not None:
                    x_list.append(transition[i](y_list[-1] if i >= len(y_list) else y_list[i]))
                else:
                    x_list.append(y_list[i])
            y_list = getattr(self, f"stage{index + 1}")(x_list)
        return self.final_layer(y_list[0])

    def init_weights(self, pretrained="", pretrained_layers=("*",)):
        """Conv/ConvT weights ~ N(0, 0.001) with zero bias, BN 1/0, then optional partial loading.

        Args:
            pretrained: a path or an already loaded state_dict (``module.``/``resnet.`` stripped,
                ``resnet2.`` ignored). Empty: random init only (logged as a warning).
            pretrained_layers: first name components to load (``'*'`` first = all).

        Raises:
            FileNotFoundError: ``pretrained`` is a non-empty path that does not exist.
        """
        init_conv_bn_(self.modules())
        if not (isinstance(pretrained, Mapping) or pretrained):
            logger.warning("PoseHighResolutionNet: no pretrained file, random initialisation")
            return
        source = "the given state_dict" if isinstance(pretrained, Mapping) else pretrained
        state = load_pretrained_state(pretrained)
        load_all = len(pretrained_layers) > 0 and pretrained_layers[0] == "*"
        own = self.state_dict()
        chosen = {
            k: v
            for k, v in state.items()
            if k in own and (load_all or k.split(".")[0] in pretrained_layers)
        }
        self.load_state_dict(chosen, strict=False)
        logger.info(
            "PoseHighResolutionNet: loaded %d of %d entries from %s",
            len(chosen),
            len(state),
            source,
        )

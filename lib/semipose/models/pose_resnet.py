"""SimpleBaseline pose network: ResNet backbone, three transposed convolutions, 1x1 heatmap head.

Ported from the original's lib/models/pose_resnet.py, pose_dual.py and pose_cons.py (MIT). The
original's three variants differ in the head's attribute name (``final_layer`` vs
``final_layer_1``) and in what they return; here one class covers them: the head's name is a
keyword argument and ``forward`` always returns the heatmap.
The optional PRM attention module (``MODEL.PRM``, §6.1a) sits between the deconvs and the head.
"""

import logging
from collections.abc import Mapping

import torch
from torch import nn

from semipose.checkpoint.files import load_pretrained_state

logger = logging.getLogger(__name__)

BN_MOMENTUM = 0.1

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "PoseResNet",
    "PRM",
    "ConvBnRelu",
    "RESNET_SPECS",
    "BN_MOMENTUM",
    "make_res_layer",
    "init_conv_bn_",
]


def conv3x3(in_planes, out_planes, stride=1):
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 → 3x3 (strided) → 1x1 (x4 channels) residual block (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ConvBnRelu(nn.Module):
    """Conv2d (with bias) → BatchNorm2d (momentum 0.1) → in-place ReLU (the original's
    ``conv_bn_relu``; attribute names ``conv``, ``bn``, ``relu`` fix the state_dict keys)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=True,
        )
        self.bn = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class PRM(nn.Module):
    """The original's PRM attention module (§6.1a), on C channels, shape-preserving.

    ``out_1`` = conv-bn-relu 3x3 of the input; a channel gate = sigmoid of two 1x1 conv-bn-relu on
    the global average of ``out_1``; a spatial gate = sigmoid of a 1x1 conv-bn-relu then a 9x9
    depthwise conv-bn-relu on ``out_1``; the output is ``out_1 · (1 + channel · spatial)``. Its
    weights keep PyTorch's default initialisation, as in the original. In training mode the
    channel gate's BatchNorm sees one value per channel and sample, so it needs a batch of 2 or
    more (as the original).

    Args:
        channels: C.

    Shapes:
        (N, C, H, W) → (N, C, H, W).
    """

    def __init__(self, channels):
        super().__init__()
        self.conv_bn_relu_prm_1 = ConvBnRelu(channels, channels, 3, padding=1)
        self.conv_bn_relu_prm_2_1 = ConvBnRelu(channels, channels, 1)
        self.conv_bn_relu_prm_2_2 = ConvBnRelu(channels, channels, 1)
        self.conv_bn_relu_prm_3_1 = ConvBnRelu(channels, channels, 1)
        self.conv_bn_relu_prm_3_2 = ConvBnRelu(channels, channels, 9, padding=4, groups=channels)

    def forward(self, x):
        out_1 = self.conv_bn_relu_prm_1(x)
        pooled = torch.mean(out_1, dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        channel = torch.sigmoid(self.conv_bn_relu_prm_2_2(self.conv_bn_relu_prm_2_1(pooled)))
        spatial = torch.sigmoid(self.conv_bn_relu_prm_3_2(self.conv_bn_relu_prm_3_1(out_1)))
        return out_1 * (1 + channel * spatial)


# depth -> (block, blocks per stage)
RESNET_SPECS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}

_HEAD_NAMES = ("final_layer", "final_layer_1")


def make_res_layer(inplanes, block, planes, blocks, stride=1):
    """A ResNet stage: ``blocks`` residual blocks, a 1x1 conv + BN shortcut where the shape changes.

    Args:
        inplanes: input channels.
        block: ``BasicBlock`` or ``Bottleneck``.
        planes: the blocks' width (output channels ``planes * block.expansion``).
        blocks: number of blocks.
        stride: stride of the first block.

    Returns:
        ``(nn.Sequential, output channels)``.
    """
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(
                inplanes,
                planes * block.expansion,
                kernel_size=1,
                stride=stride,
                bias=False,
            ),
            nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    inplanes = planes * block.expansion
    layers += [block(inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), inplanes


def init_conv_bn_(modules):
    """In place: Conv/ConvT weights ~ N(0, 0.001) with zero bias, BatchNorm weight 1 / bias 0."""
    for m in modules:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def _deconv_padding(kernel):
    """(padding, output_padding) with which a stride-2 transposed conv exactly doubles the size."""
    if kernel == 4:
        return 1, 0
    if kernel == 3:
        return 1, 1
    if kernel == 2:
        return 0, 0
    raise ValueError(f"unsupported deconv kernel {kernel} (expected 2, 3 or 4)")


def _check_settings(
    num_layers, head_name, num_deconv_layers, num_deconv_filters, num_deconv_kernels,
    final_conv_kernel,
):
    """Raises ValueError on an unsupported depth, head name or deconv/head setting."""
    if num_layers not in RESNET_SPECS:
        raise ValueError(
            f"unsupported ResNet depth {num_layers}; expected one of {sorted(RESNET_SPECS)}"
        )
    if head_name not in _HEAD_NAMES:
        raise ValueError(f"head_name must be one of {_HEAD_NAMES}, got {head_name!r}")
    if not (len(num_deconv_filters) == len(num_deconv_kernels) == num_deconv_layers):
        raise ValueError(
            "num_deconv_filters and num_deconv_kernels must have num_deconv_layers entries"
        )
    if final_conv_kernel not in (1, 3):
        raise ValueError(f"final_conv_kernel must be 1 or 3, got {final_conv_kernel}")


class PoseResNet(nn.Module):
    """SimpleBaseline: ResNet-N, ``num_deconv_layers`` stride-2 deconvs, a heatmap conv (stride 4).

    Args:
        num_layers: ResNet depth, one of 18, 34, 50, 101, 152.
        num_joints: K, the heatmap channels (24 in every experiment).
        deconv_with_bias: bias in the transposed convolutions.
        num_deconv_layers: number of ConvT/BN/ReLU stages.
        num_deconv_filters: channels of each stage.
        num_deconv_kernels: kernel of each stage (4, 3 or 2).
        final_conv_kernel: kernel of the head (1 or 3).
        head_name: attribute name of the head, ``'final_layer'`` (pose_resnet, pose_cons) or
            ``'final_layer_1'`` (pose_dual); it fixes the state_dict key.
        prm: add the original's PRM attention module (``PRM``, key prefix ``prm.``) on the last
            deconv stage's output, before the head.
        base_width: (ours) channels of the stem and layer1; layers 2-4 have 2, 4 and 8 times as
            many (64: the original's ResNets; 16-32 make a light network for CPU runs; the key
            names are the same).

    Shapes:
        input (N, 3, H_in, W_in) → heatmap (N, K, H_in/4, W_in/4) with three deconvs.
    """

    def __init__(
        self,
        num_layers=50,
        num_joints=24,
        *,
        deconv_with_bias=False,
        num_deconv_layers=3,
        num_deconv_filters=(256, 256, 256),
        num_deconv_kernels=(4, 4, 4),
        final_conv_kernel=1,
        head_name="final_layer",
        prm=False,
        base_width=64,
    ):
        super().__init__()
        _check_settings(
            num_layers, head_name, num_deconv_layers, num_deconv_filters, num_deconv_kernels,
            final_conv_kernel,
        )
        block, layers = RESNET_SPECS[num_layers]
        self.num_layers = num_layers
        self.head_name = head_name
        w = int(base_width)
        if w < 1:
            raise ValueError(f"base_width must be positive, got {base_width}")
        self.inplanes = w

        self.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, w, layers[0])
        self.layer2 = self._make_layer(block, 2 * w, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * w, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * w, layers[3], stride=2)

        self.deconv_layers = self._make_deconv_layers(
            num_deconv_filters, num_deconv_kernels, deconv_with_bias
        )
        # registered before the head, so the state_dict order is the original's
        self.prm = PRM(self.inplanes) if prm else None
        head = nn.Conv2d(
            self.inplanes,
            num_joints,
            kernel_size=final_conv_kernel,
            stride=1,
            padding=1 if final_conv_kernel == 3 else 0,
        )
        setattr(self, head_name, head)

    def _make_deconv_layers(self, num_filters, num_kernels, with_bias):
        """Builds the upsampling stages (deconv, BN, ReLU), advancing ``self.inplanes``."""
        stages = []
        for planes, kernel in zip(num_filters, num_kernels):
            padding, output_padding = _deconv_padding(kernel)
            stages += [
                nn.ConvTranspose2d(
                    self.inplanes,
                    planes,
                    kernel_size=kernel,
                    stride=2,
                    padding=padding,
                    output_padding=output_padding,
                    bias=with_bias,
                ),
                nn.BatchNorm2d(planes, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
            self.inplanes = planes
        return nn.Sequential(*stages)

    def _make_layer(self, block, planes, blocks, stride=1):
        layer, self.inplanes = make_res_layer(self.inplanes, block, planes, blocks, stride)
        return layer

    @property
    def head(self):
        """The heatmap convolution, whatever its attribute name."""
        return getattr(self, self.head_name)

    def forward(self, x):
        """Args: x (N, 3, H_in, W_in). Returns the heatmap (N, K, H, W)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.deconv_layers(x)
        if self.prm is not None:
            x = self.prm(x)
        return self.head(x)

    def init_weights(self, pretrained=""):
        """Initialises the head, then loads ImageNet (or pose_dual) backbone weights.

        Deconv weights and the head weight ~ N(0, 0.001), biases 0, deconv BNs weight 1 / bias 0;
        the backbone keeps PyTorch's default init unless ``pretrained`` provides it, and the PRM
        module (if any) keeps it always, as in the original.

        Args:
            pretrained: a checkpoint path or an already loaded state_dict (a bare dict, or one under
                ``'state_dict'``; ``module.`` is stripped, ``resnet.`` keys are used without the
                prefix and ``resnet2.`` keys ignored). ``final_layer*`` and ``fc.*`` entries are
                dropped. Empty: random init only (logged as a warning).

        Raises:
            FileNotFoundError: ``pretrained`` is a non-empty path that does not exist.
        """
        init_conv_bn_(self.deconv_layers.modules())
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.constant_(self.head.bias, 0)
        if isinstance(pretrained, Mapping) or pretrained:
            state = load_pretrained_state(pretrained)
            source = "the given state_dict" if isinstance(pretrained, Mapping) else pretrained
        else:
            logger.warning(
                "PoseResNet-%d: no pretrained file, the backbone is randomly initialised",
                self.num_layers,
            )
            return
        state = {k: v for k, v in state.items() if not k.startswith(("final_layer", "fc."))}
        result = self.load_state_dict(state, strict=False)
        backbone_missing = [
            k
            for k in result.missing_keys
            if not k.startswith(("deconv_layers.", "prm.", self.head_name + "."))
            and not k.endswith("num_batches_tracked")
        ]
        if backbone_missing:
            logger.warning(
                "PoseResNet-%d: %d backbone entries not in %s: %s",
                self.num_layers,
                len(backbone_missing),
                source,
                backbone_missing,
            )
        if result.unexpected_keys:
            logger.warning(
                "PoseResNet-%d: ignored %d unexpected entries of %s: %s",
                self.num_layers,
                len(result.unexpected_keys),
                source,
                result.unexpected_keys,
            )
        logger.info(
            "PoseResNet-%d: loaded %d backbone entries from %s",
            self.num_layers,
            len(state) - len(result.unexpected_keys),
            source,
        )

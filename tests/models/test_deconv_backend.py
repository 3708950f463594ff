"""The deconvolution head runs on oneDNN on the CPU: neither the forward nor the backward of
PoseResNet's ``ConvTranspose2d`` stages falls back to PyTorch's native ``slow_conv_transpose2d``
(several times slower), in fp32, NCHW or channels_last. (PoseLite has no transposed convolution:
it upsamples by nearest neighbour.)"""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from semipose.models.pose_resnet import PoseResNet

pytestmark = pytest.mark.usefixtures("single_thread")


def _aten_ops(model, x):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(x).sum().backward()
    return {e.name for e in prof.events() if e.name.startswith("aten::")}


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN in this build")
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_deconvolution_head_avoids_the_slow_native_kernel(channels_last):
    torch.manual_seed(0)
    model = PoseResNet(18, 24, num_deconv_filters=(16, 16, 16), base_width=8)
    x = torch.randn(2, 3, 64, 48, requires_grad=True)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    ops = _aten_ops(model, x)
    assert "aten::conv_transpose2d" in ops and "aten::convolution_backward" in ops
    assert "aten::slow_conv_transpose2d" not in ops
    with torch.backends.mkldnn.flags(enabled=False):  # the check sees a fallback when there is one
        assert "aten::slow_conv_transpose2d" in _aten_ops(model, x)

"""Device-side crop warp and heatmap targets (``DATASET.DEVICE_WARP``).

With the device path a DataLoader worker only decodes the image (or reads the cached region), draws
the augmentation and computes the crop affine as usual, then hands over the source pixels the crop
needs (``DeferredCrop``) and each joint's heatmap window (``DeferredTarget``). ``collate`` pads them
into batches (``CropBatch``, ``TargetBatch``) and ``DeviceBatchLoader`` renders them where the step
runs: the crops with one ``grid_sample`` per batch (bilinear, zeros outside the image, rounded to
integers as cv2's uint8 output, then ToTensor + Normalize), the targets with the heatmap codec's
``MSRAHeatmap.batch_encode``, so they equal its host ``encode`` bit for bit. Every function takes
its device from its inputs: the same code runs on CPU tensors (tests) and on a GPU.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from semipose.codecs import MSRAHeatmap

__all__ = [
    "CropBatch",
    "DeferredCrop",
    "DeferredTarget",
    "DeviceBatchLoader",
    "DeviceRenderer",
    "TargetBatch",
    "collate",
    "render_crops",
]


class DeferredCrop:
    """One crop to render: the source pixels it samples and the output-to-source affine.

    Args:
        patch: (h, w, 3) uint8 source pixels (BGR, or RGB with ``color_rgb``).
        inverse: (2, 3) float64 affine taking output pixel ``(x, y)`` to ``patch`` pixel
            coordinates (pixel centres at integers, as ``cv2.warpAffine``'s inverse map).
    """

    __slots__ = ("patch", "inverse")

    def __init__(self, patch, inverse):
        self.patch = patch
        self.inverse = inverse

    @classmethod
    def from_warp(cls, image, warp, output_size):
        """The part of ``image`` that ``cv2.warpAffine(image, warp, output_size)`` samples.

        Args:
            image: (H, W, 3) uint8 source.
            warp: (2, 3) source-to-output affine.
            output_size: output ``(W, H)``.

        Returns:
            A ``DeferredCrop`` whose patch is the bounding box of the sampled points (bilinear
            neighbours included) clipped to the image, and whose inverse is relative to it.
        """
        full = np.vstack([np.asarray(warp, np.float64), [0.0, 0.0, 1.0]])
        return cls.from_inverse(image, np.linalg.inv(full)[:2], output_size)

    @classmethod
    def from_inverse(cls, image, inverse, output_size):
        """As ``from_warp``, given the output-to-source affine ``inverse`` (2, 3)."""
        inv = np.asarray(inverse, np.float64)
        w_out, h_out = float(output_size[0]), float(output_size[1])
        corners = np.array([[0.0, 0.0, 1.0], [w_out - 1, 0.0, 1.0], [0.0, h_out - 1, 1.0],
                            [w_out - 1, h_out - 1, 1.0]])  # fmt: skip
        pts = corners @ inv.T
        img_h, img_w = image.shape[:2]
        x0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
        y0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
        x1 = min(int(np.ceil(pts[:, 0].max())) + 2, img_w)
        y1 = min(int(np.ceil(pts[:, 1].max())) + 2, img_h)
        if x1 <= x0 or y1 <= y0:  # nothing of the image is sampled: the crop is black
            far = np.array([[0.0, 0.0, -8.0], [0.0, 0.0, -8.0]])  # every sample outside
            return cls(np.zeros((1, 1, 3), np.uint8), far)
        inv = inv.copy()
        inv[0, 2] -= x0
        inv[1, 2] -= y0
        return cls(np.ascontiguousarray(image[y0:y1, x0:x1]), inv)


class DeferredTarget:
    """One sample's heatmap windows (``MSRAHeatmap.windows``' ``ul``/``br``) and active joints.

    Args:
        window: (K, 4) int32 ``[ul_x, ul_y, br_x, br_y]`` of each joint's stamp (end exclusive).
        active: (K,) bool, joints whose stamp is drawn (weight > 0.5 after the outside check).
    """

    __slots__ = ("window", "active")

    def __init__(self, window, active):
        self.window = window
        self.active = active


class _TensorPair:
    """A batch of two tensors (``_fields``, the first's length is the batch size) that moves and
    pins as one, as the DataLoader's pin-memory thread and the device copy expect."""

    _fields = ()

    def _apply(self, fn):
        return type(self)(*(fn(getattr(self, name)) for name in self._fields))

    def pin_memory(self):
        return self._apply(lambda t: t.pin_memory())

    def to(self, device, non_blocking=False):
        return self._apply(lambda t: t.to(device, non_blocking=non_blocking))

    def __len__(self):
        return getattr(self, self._fields[0]).shape[0]


class CropBatch(_TensorPair):
    """Padded source patches of a batch: ``patches`` (N, Hp, Wp, 3) uint8 (zeros beyond each
    patch) and ``inverse`` (N, 2, 3) float32 output-to-patch affines."""

    _fields = ("patches", "inverse")

    def __init__(self, patches, inverse):
        self.patches = patches
        self.inverse = inverse

    @classmethod
    def stack(cls, items):
        """Pads and stacks ``DeferredCrop`` items."""
        hp = max(it.patch.shape[0] for it in items)
        wp = max(it.patch.shape[1] for it in items)
        patches = torch.zeros((len(items), hp, wp, 3), dtype=torch.uint8)
        for i, it in enumerate(items):
            h, w = it.patch.shape[:2]
            patches[i, :h, :w] = torch.from_numpy(it.patch)
        inverse = torch.from_numpy(np.stack([it.inverse for it in items]).astype(np.float32))
        return cls(patches, inverse)


class TargetBatch(_TensorPair):
    """Heatmap windows of a batch: ``window`` (N, K, 4) int32 and ``active`` (N, K) bool."""

    _fields = ("window", "active")

    def __init__(self, window, active):
        self.window = window
        self.active = active

    @classmethod
    def stack(cls, items):
        """Stacks ``DeferredTarget`` items."""
        window = torch.from_numpy(np.stack([it.window for it in items]).astype(np.int32))
        active = torch.from_numpy(np.stack([it.active for it in items]).astype(bool))
        return cls(window, active)


def collate(batch):
    """``default_collate`` that stacks ``DeferredCrop``/``DeferredTarget`` into ``CropBatch``/
    ``TargetBatch`` (at any depth of the item's lists and tuples, e.g. the mixed sets' pairs)."""
    elem = batch[0]
    if isinstance(elem, DeferredCrop):
        return CropBatch.stack(batch)
    if isinstance(elem, DeferredTarget):
        return TargetBatch.stack(batch)
    if isinstance(elem, (list, tuple)):
        return [collate(list(group)) for group in zip(*batch)]
    return default_collate(batch)


def render_crops(batch, output_size, mean=None, std=None):
    """Warps a ``CropBatch`` on its device: the crops of ``cv2.warpAffine(INTER_LINEAR)``.

    Args:
        batch: a ``CropBatch`` (its tensors on the target device).
        output_size: output ``(W, H)``.
        mean: (3,) per-channel mean of the Normalize step, or None (no normalisation).
        std: (3,) per-channel std of the Normalize step.

    Returns:
        (N, 3, H, W) float32: the crops rounded to integers, divided by 255 (ToTensor) and
        normalised when ``mean`` is given; channel order as the source (BGR by default).
    """
    patches, inverse = batch.patches, batch.inverse
    device = patches.device
    n, hp, wp = patches.shape[:3]
    w_out, h_out = int(output_size[0]), int(output_size[1])
    src = patches.permute(0, 3, 1, 2).float()
    ys = torch.arange(h_out, device=device, dtype=torch.float32).view(1, h_out, 1)
    xs = torch.arange(w_out, device=device, dtype=torch.float32).view(1, 1, w_out)
    a = inverse.view(n, 6, 1, 1).float()
    u = a[:, 0] * xs + a[:, 1] * ys + a[:, 2]
    v = a[:, 3] * xs + a[:, 4] * ys + a[:, 5]
    grid = torch.stack([(2.0 * u + 1.0) / wp - 1.0, (2.0 * v + 1.0) / hp - 1.0], dim=-1)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out.round_().clamp_(0.0, 255.0).div_(255.0)
    if mean is not None:
        m = torch.as_tensor(mean, dtype=out.dtype, device=device).view(1, 3, 1, 1)
        s = torch.as_tensor(std, dtype=out.dtype, device=device).view(1, 3, 1, 1)
        out = out.sub_(m).div_(s)
    return out


class DeviceRenderer:
    """Turns a collated device-path batch into the usual ``(inputs, targets, weights, meta)`` on
    ``device``: every ``CropBatch`` becomes normalised crops, every ``TargetBatch`` heatmaps (the
    codec's ``batch_encode``), and every other tensor is moved (non-blocking).

    Args:
        output_size: crop ``(W, H)``.
        heatmap_size: heatmap ``(w, h)``.
        sigma: target sigma (heatmap pixels).
        mean: (3,) Normalize mean (None: crops in [0, 1]).
        std: (3,) Normalize std.
        device: where the batches are rendered.
        codec: the heatmap codec rendering the targets; None -> ``MSRAHeatmap`` of
            ``output_size``, ``heatmap_size`` and ``sigma``.
    """

    def __init__(self, output_size, heatmap_size, sigma, mean=None, std=None, device="cpu",
                 codec=None):  # fmt: skip
        self.output_size = tuple(int(v) for v in output_size)
        self.heatmap_size = tuple(int(v) for v in heatmap_size)
        self.device = torch.device(device)
        self.mean = mean
        self.std = std
        if codec is None:
            codec = MSRAHeatmap(image_size=self.output_size, heatmap_size=self.heatmap_size,
                                sigma=sigma)  # fmt: skip
        self.codec = codec

    def __call__(self, batch):
        non_blocking = self.device.type == "cuda"
        if isinstance(batch, CropBatch):
            return render_crops(batch.to(self.device, non_blocking), self.output_size, self.mean,
                                self.std)  # fmt: skip
        if isinstance(batch, TargetBatch):
            batch = batch.to(self.device, non_blocking)
            return self.codec.batch_encode(batch.window, batch.active)
        if isinstance(batch, (list, tuple)):
            return [self(b) for b in batch]
        if isinstance(batch, dict):
            return {k: self(v) if isinstance(v, (CropBatch, TargetBatch)) else v
                    for k, v in batch.items()}  # fmt: skip
        if torch.is_tensor(batch):
            return batch.to(self.device, non_blocking=non_blocking)
        return batch


class DeviceBatchLoader:
    """Wraps a DataLoader built with ``collate``: iterating yields rendered batches.

    ``len``, ``dataset``, ``sampler``, ``batch_size`` and every other attribute come from the
    wrapped loader. The meta dicts stay on the CPU, as with the cv2 path.

    Args:
        loader: the DataLoader (``collate_fn=collate``).
        renderer: a ``DeviceRenderer``.
    """

    def __init__(self, loader, renderer):
        self.loader = loader
        self.renderer = renderer

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        if name in ("loader", "renderer"):
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self):
        for inputs, targets, weights, meta in self.loader:
            yield self.renderer(inputs), self.renderer(targets), self.renderer(weights), meta

"""Debug images: batches with joints, heatmap grids (the original's lib/utils/vis.py, MIT).

Given a ``KeypointLayout`` (the set's metainfo: skeleton, limb and joint colours), the batch
pictures draw each crop's skeleton with ``draw.draw_pose``, as the prediction drawings do; without
one, a red dot per joint as the original.
"""
import cv2
import numpy as np
import torch
import torchvision

from semipose.common.heatmaps import get_max_preds
from semipose.utils.vis.draw import draw_pose


def _to_uint8_grid(batch, nrow, padding):
    grid = torchvision.utils.make_grid(batch.float(), nrow, padding, normalize=True)
    return grid.mul(255).clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy().copy()


def _draw_skeleton(tile, joints, vis, layout):
    """Draws one crop's joints (K channels, the layout's native ones picked out of a union layout)
    on its ``tile`` of the grid, in place: the visible joints and the limbs between two of them."""
    joints, vis = np.asarray(joints, np.float64), np.asarray(vis, np.float64)
    if joints.shape[0] != layout.num_joints:
        index = list(layout.union_index)
        joints, vis = joints[index], vis[index]
    kpts = np.concatenate([joints[:, :2], (vis[:, :1] > 0).astype(np.float64)], axis=1)
    draw_pose(tile, kpts, layout.skeleton, limb_colors=layout.limb_colors,
              joint_colors=layout.joint_colors, kpt_thr=0.5)  # fmt: skip


def save_batch_image_with_joints(batch_image, batch_joints, batch_joints_vis, file_name, nrow=8,
                                 padding=2, layout=None):
    """Writes a grid of the input batch with its visible joints drawn.

    Args:
        batch_image: (N, 3, H, W) tensor.
        batch_joints: (N, K, >=2) joints in input pixels (tensor or numpy).
        batch_joints_vis: (N, K, >=1) visibilities (or target weights): 0 is not drawn.
        file_name: output image path.
        nrow: crops per grid row.
        padding: pixels between the crops.
        layout: a ``KeypointLayout``: the skeleton's limbs between visible joints in its limb
            colours and the joints in its joint colours (K its joint count, or the output channels
            it indexes with ``union_index``); None: a red dot per visible joint.
    """
    ndarr = _to_uint8_grid(batch_image, nrow, padding)
    n = batch_image.size(0)
    if n == 1:
        padding = 0  # make_grid returns a lone image as it is, without the padding
    xmaps = min(nrow, n)
    height = int(batch_image.size(2) + padding)
    width = int(batch_image.size(3) + padding)
    joints_all = np.asarray(torch.as_tensor(batch_joints).cpu())
    vis_all = np.asarray(torch.as_tensor(batch_joints_vis).cpu())
    for k in range(n):
        top, left = (k // xmaps) * height + padding, (k % xmaps) * width + padding
        if layout is not None:  # drawn on the crop's own tile: limbs stop at its border
            tile = ndarr[top:top + height - padding, left:left + width - padding]
            _draw_skeleton(tile, joints_all[k], vis_all[k], layout)
            continue
        for joint, vis in zip(joints_all[k], vis_all[k]):
            if vis[0]:
                cv2.circle(ndarr, (int(left + joint[0]), int(top + joint[1])), 2, [255, 0, 0], 2)
    cv2.imwrite(file_name, ndarr)


def save_batch_heatmaps(batch_image, batch_heatmaps, file_name, normalize=True):
    """Writes one row per sample: the image, then each joint's heatmap (JET x 0.7 + image x 0.3).

    Args:
        batch_image: (N, 3, H, W) tensor.
        batch_heatmaps: (N, K, h, w) tensor.
        file_name: output image path.
    """
    batch_image = batch_image.detach().float().cpu()
    if normalize:
        lo, hi = float(batch_image.min()), float(batch_image.max())
        batch_image = (batch_image - lo) / max(hi - lo, 1e-5)
    heatmaps_all = batch_heatmaps.detach().float().cpu().numpy()
    n, k, h, w = heatmaps_all.shape
    grid = np.zeros((n * h, (k + 1) * w, 3), dtype=np.uint8)
    preds, _ = get_max_preds(heatmaps_all)
    for i in range(n):
        image = batch_image[i].mul(255).clamp(0, 255).byte().permute(1, 2, 0).numpy()
        resized = cv2.resize(image, (w, h))
        heatmaps = (np.clip(heatmaps_all[i], 0, 1) * 255).astype(np.uint8)
        for j in range(k):
            colored = cv2.applyColorMap(heatmaps[j], cv2.COLORMAP_JET)
            tile = (colored * 0.7 + resized * 0.3).astype(np.uint8)
            cv2.circle(tile, (int(preds[i, j, 0]), int(preds[i, j, 1])), 1, [0, 0, 255], 1)
            grid[i * h:(i + 1) * h, (j + 1) * w:(j + 2) * w] = tile
        grid[i * h:(i + 1) * h, 0:w] = resized
    cv2.imwrite(file_name, grid)


def save_debug_images(debug, input, meta, target, joints_pred, output, prefix, layout=None):
    """Writes ``{prefix}_gt.jpg``, ``_pred.jpg``, ``_hm_gt.jpg``, ``_hm_pred.jpg`` per DEBUG flags.

    Args:
        debug: the ``cfg.DEBUG`` node (DEBUG, SAVE_BATCH_IMAGES_GT, ...).
        input: (N, 3, H, W) input batch.
        meta: the batch meta (``joints``, ``joints_vis`` in input pixels).
        target: (N, K, h, w) target heatmaps.
        joints_pred: (N, K, 2) predictions in input pixels.
        output: (N, K, h, w) predicted heatmaps.
        prefix: path prefix.
        layout: the set's ``KeypointLayout`` (``save_batch_image_with_joints``); None: dots.
    """
    if not debug.DEBUG:
        return
    if debug.SAVE_BATCH_IMAGES_GT:
        save_batch_image_with_joints(input, meta["joints"], meta["joints_vis"], f"{prefix}_gt.jpg",
                                     layout=layout)  # fmt: skip
    if debug.SAVE_BATCH_IMAGES_PRED:
        save_batch_image_with_joints(input, joints_pred, meta["joints_vis"], f"{prefix}_pred.jpg",
                                     layout=layout)  # fmt: skip
    if debug.SAVE_HEATMAPS_GT:
        save_batch_heatmaps(input, target, f"{prefix}_hm_gt.jpg")
    if debug.SAVE_HEATMAPS_PRED:
        save_batch_heatmaps(input, output, f"{prefix}_hm_pred.jpg")

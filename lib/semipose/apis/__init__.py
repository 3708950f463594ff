"""Inference on any image or video: build a model, find people, predict and draw their poses.

>>> from semipose.apis import init_model, inference_topdown
>>> model = init_model("experiments/synthetic/96x64_SYN_PoseDual_JointCut.yaml", "final.pth.tar")
>>> poses = inference_topdown(model, "photo.jpg", boxes=[[10, 20, 80, 200]])
>>> poses[0].keypoints  # (17, 3) x, y, score in image pixels (COCO order)
"""
from semipose.apis.boxes import (
    AnnotationBoxes,
    BoxSourceError,
    DetectionJsonBoxes,
    TorchvisionPersonDetector,
    WholeImageBoxes,
)
from semipose.apis.inference import (
    PersonPose,
    TopDownPoseModel,
    inference_topdown,
    init_model,
    oks_nms_poses,
)
from semipose.utils.vis import LAYOUTS, KeypointLayout, draw_predictions, save_drawn_predictions

__all__ = [
    "AnnotationBoxes",
    "BoxSourceError",
    "DetectionJsonBoxes",
    "KeypointLayout",
    "LAYOUTS",
    "PersonPose",
    "TopDownPoseModel",
    "TorchvisionPersonDetector",
    "WholeImageBoxes",
    "draw_predictions",
    "inference_topdown",
    "init_model",
    "oks_nms_poses",
    "save_drawn_predictions",
]

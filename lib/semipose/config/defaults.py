"""The default configuration tree: every key of the original (lib/core/config.py, MIT) plus ours.

Each key carries a one-line comment (the hard-augmentation op settings carry theirs in
``semipose/common/hard_aug.py``, from which their keys are made). Keys marked "(unused)" are kept
so that every original YAML loads unchanged; keys marked "(ours)" do not exist in the original.
"""
from yacs.config import CfgNode as CN

from semipose.common.hard_aug import config_defaults as hard_aug_config_defaults

_C = CN()

# ---------------------------------------------------------------- top level
_C.LOCAL_RANK = 0  # DDP rank of this process (set at run time by the launcher, not YAML)
_C.UNSUP_TRANSFORM = True  # apply the in-model random affine to the hard view and teacher heatmaps
_C.CONS_RAND_AUG = False  # RandAugment copy of the unlabeled crop, used as the hard-view source
_C.RAND_MAGNITUDE = 10  # RandAugment magnitude M (N is fixed at 2)
_C.MASK_JOINT_NUM = 0  # number of joint-cutout boxes per hard image (0 = off)
_C.MASK_JOINT_FIX = False  # (ours) fix cutout H/W clamp swap; draw joints only in trained channels
_C.CONS_SAME_VIEW = False  # (ours) collapse-prone control: the student sees the teacher's easy view
_C.CONS_HARD_TEACHER = False  # (ours) collapse-prone control: the teacher gets its own hard affine
_C.MASK_JOINT_RELATIVE = False  # (ours) scale cutout box sizes and jitter by input width / 192
_C.RAW_INPUT = False  # build the unlabeled dataset with is_train=False (no geometric augmentation)
_C.SAVE_INTER = 0  # if > 0, save a bare state_dict every SAVE_INTER epochs
_C.OUTPUT_DIR = ""  # root of the experiment output tree (checkpoints, results, logs)
_C.LOG_DIR = ""  # root of the TensorBoard tree
_C.DATA_DIR = ""  # prefix joined in front of the data/model paths when non-empty
_C.GPUS = "0"  # comma-separated GPU ids (single process: the first is used; DDP: ignored)
_C.WORKERS = 4  # DataLoader workers
# (ours) True: the loading of the WORKERS workers done in the training process, batch i with
# worker i % WORKERS's random streams, so the batches (and the run) are those of WORKERS worker
# processes, bit for bit, without their processes (engine/inline_workers.py); for machines where
# a worker takes a core from the step
_C.WORKERS_INLINE = False
_C.PRINT_FREQ = 20  # log every N iterations (0: quiet console, one line per epoch; ours)
_C.SEED = 1314  # (ours) seed of torch/numpy/python RNGs and the mixed sets' labeled-index draw
_C.DEVICE = "auto"  # (ours) 'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'

# ---------------------------------------------------------------- cuDNN
_C.CUDNN = CN()
_C.CUDNN.BENCHMARK = False  # torch.backends.cudnn.benchmark
_C.CUDNN.DETERMINISTIC = False  # torch.backends.cudnn.deterministic
_C.CUDNN.ENABLED = True  # torch.backends.cudnn.enabled

# ---------------------------------------------------------------- model
_C.MODEL = CN()
_C.MODEL.BACKBONE = "resnet"  # semi methods: resnet or hrnet; lite (ours) for any method
_C.MODEL.PRM = False  # add the PRM attention module (pose_resnet / pose_hrnet only)
_C.MODEL.NAME = "pose_resnet"  # registry key: pose_resnet, pose_hrnet, pose_cons, pose_dual
_C.MODEL.INIT_WEIGHTS = True  # initialise from MODEL.PRETRAINED (False: random init + warning)
_C.MODEL.PRETRAINED = ""  # ImageNet (or pose_dual) checkpoint used to initialise the backbone(s)
_C.MODEL.TCH_PRETRAINED = ""  # (unused) teacher checkpoint path, only joined with DATA_DIR
_C.MODEL.SEG_PRETRAINED = ""  # (unused) segmentation checkpoint path, only joined with DATA_DIR
_C.MODEL.NUM_JOINTS = 16  # heatmap channels (24 = the union layout in every experiment)
_C.MODEL.IMAGE_SIZE = [256, 256]  # network input (width, height)
_C.MODEL.GROUPS = 1  # ResNet groups (pose_resnet only)
_C.MODEL.WIDTH_PER_GROUP = 64  # ResNet width per group (pose_resnet only)
_C.MODEL.STYLE = "pytorch"  # ResNet block style ('pytorch'; 'caffe' is rejected)

# MODEL.EXTRA is replaced wholesale by a YAML's EXTRA (as the original does); the allowed keys are
# the union of the SimpleBaseline and the HRNet extras below.
_C.MODEL.EXTRA = CN(new_allowed=True)
_C.MODEL.EXTRA.NUM_LAYERS = 50  # ResNet depth: 18, 34, 50, 101, 152
_C.MODEL.EXTRA.BASE_WIDTH = 64  # (ours) ResNet stem/layer1 channels (64: the original; 16-32: CPU)
_C.MODEL.EXTRA.DECONV_WITH_BIAS = False  # bias in the transposed convolutions
_C.MODEL.EXTRA.NUM_DECONV_LAYERS = 3  # number of deconv stages
_C.MODEL.EXTRA.NUM_DECONV_FILTERS = [256, 256, 256]  # channels of each deconv stage
_C.MODEL.EXTRA.NUM_DECONV_KERNELS = [4, 4, 4]  # kernel of each deconv stage (4, 3 or 2)
_C.MODEL.EXTRA.FINAL_CONV_KERNEL = 1  # kernel of the 1x1 (or 3x3) heatmap head
_C.MODEL.EXTRA.TARGET_TYPE = "gaussian"  # heatmap target type (only 'gaussian')
_C.MODEL.EXTRA.HEATMAP_SIZE = [64, 64]  # heatmap (width, height)
_C.MODEL.EXTRA.SIGMA = 2  # Gaussian sigma of the target, in heatmap pixels

# HRNet extras (POSE_HIGH_RESOLUTION_NET in the original); only present after a YAML sets them.
HRNET_EXTRA = CN()
HRNET_EXTRA.PRETRAINED_LAYERS = ["*"]  # first name components loaded from PRETRAINED ('*' = all)
HRNET_EXTRA.STEM_INPLANES = 64  # stem channels
HRNET_EXTRA.FINAL_CONV_KERNEL = 1  # kernel of the heatmap head
for _name, _mods, _branches, _chans in (
    ("STAGE2", 1, 2, [32, 64]),
    ("STAGE3", 1, 3, [32, 64, 128]),
    ("STAGE4", 1, 4, [32, 64, 128, 256]),
):
    _stage = CN()
    _stage.NUM_MODULES = _mods  # high-resolution modules in the stage
    _stage.NUM_BRANCHES = _branches  # parallel resolutions
    _stage.NUM_BLOCKS = [4] * _branches  # blocks per branch
    _stage.NUM_CHANNELS = _chans  # channels per branch
    _stage.BLOCK = "BASIC"  # block type: BASIC or BOTTLENECK
    _stage.FUSE_METHOD = "SUM"  # branch fusion
    HRNET_EXTRA[_name] = _stage

# Every key allowed inside MODEL.EXTRA (SimpleBaseline + HRNet).
EXTRA_KEYS = frozenset(_C.MODEL.EXTRA.keys()) | frozenset(HRNET_EXTRA.keys())

# ---------------------------------------------------------------- loss
_C.LOSS = CN()
_C.LOSS.USE_TARGET_WEIGHT = True  # weight each joint's MSE by its target weight

# ---------------------------------------------------------------- dataset
_C.DATASET = CN()
_C.DATASET.ROOT = ""  # data root (holds coco/, mpii/, ai_challenger/)
_C.DATASET.PSEUDO_ANNO = ""  # (unused) pseudo-label annotation file, only joined with DATA_DIR
_C.DATASET.TRAIN_DATASET = "mpii"  # registry key of the training set (coco, mix_coco_coco, ...)
_C.DATASET.TEST_DATASET = "mpii"  # registry key of the validation set
_C.DATASET.TRAIN_SET = "train"  # image set of the training set
_C.DATASET.TRAIN_UNSUP_SET = ""  # image set of the unlabeled COCO pool ('' = TRAIN_SET)
_C.DATASET.UNSUP_BBOX_FILE = ""  # (ours) unlabeled set's detection file ('' = TEST.COCO_BBOX_FILE)
_C.DATASET.TEST_SET = "valid"  # image set of the validation set
_C.DATASET.DATA_FORMAT = "jpg"  # 'jpg' (files) or 'zip' (<set>.zip archives)
_C.DATASET.HYBRID_JOINTS_TYPE = ""  # only appended to the output directory name
_C.DATASET.SELECT_DATA = False  # SimpleBaseline's sample filter on the training records
_C.DATASET.TRAIN_LEN = -1  # labeled COCO subset: the first N person instances (<= 0: all)
_C.DATASET.AI_ROOT = ""  # (unused) AI Challenger root
_C.DATASET.BOX_THRE = [0, 0]  # (unused)
_C.DATASET.SCORE_THRE = [0]  # (unused)
_C.DATASET.COLOR_RGB = False  # convert the BGR image to RGB (False in every original YAML)
_C.DATASET.PROB_HALF_BODY = 0.0  # probability of the half-body crop
_C.DATASET.NUM_JOINTS_HALF_BODY = 8  # visible joints needed for the half-body crop
_C.DATASET.FLIP = True  # random horizontal flip while training
_C.DATASET.SCALE_FACTOR = 0.25  # scale jitter: clip(N(0,1)*sf + 1, 1-sf, 1+sf)
_C.DATASET.ROT_FACTOR = 30  # rotation jitter: clip(N(0,1)*rf, -2rf, 2rf) degrees
_C.DATASET.REDUCED_DECODE = False  # (ours) decode JPEGs at 1/2-1/8 size when the crop downscales so
_C.DATASET.CROP_CACHE = ""  # (ours) person-crop cache folder: regions cut once, reread ('' = off)
_C.DATASET.CROP_CACHE_FORMAT = "raw"  # (ours) crop-cache files: 'raw' (exact) or 'jpg' (lossy)
_C.DATASET.DEVICE_WARP = False  # (ours) training crops + targets rendered on the device in batch

# (ours) a user's own keypoint set: DATASET.TRAIN_DATASET / TEST_DATASET 'custom'
# (docs/CUSTOM_DATA.md)
_C.DATASET.METAINFO = ""  # metainfo YAML (keypoint names, flip pairs, skeleton, sigmas); a bare
# name (coco, mpii, ai_challenger) is a built-in file; the joint count MODEL.NUM_JOINTS must match
_C.DATASET.TRAIN_ANN = ""  # labeled COCO-format json (relative to ROOT, or absolute); file_name
# of its images is relative to ROOT (or absolute)
_C.DATASET.TRAIN_IMAGES = ""  # (ours) image folder of TRAIN_ANN's file_names (relative to ROOT,
# or absolute): a COCO export's bare names used as they are; '' = file_names relative to ROOT
_C.DATASET.VAL_IMAGES = ""  # (ours) the same for VAL_ANN
_C.DATASET.VAL_ANN = ""  # validation COCO-format json (relative to ROOT, or absolute)
_C.DATASET.CATEGORY = ""  # (ours) the custom jsons' keypoint category: a name or an id; '' = the
# one named as the metainfo, else the only one, else the only one with the metainfo's joint count
_C.DATASET.UNLABELED = []  # unlabeled image folders and video files (relative to ROOT or
# absolute); non-empty: 'custom' training pairs each labeled crop with an unlabeled one
_C.DATASET.UNLABELED_BOXES = "frame"  # 'frame' (one box: the whole image/frame) or a detection
# json: [{"file_name": <image path or <video>#<frame>>, "bbox": [x, y, w, h], "score": s}, ...]
_C.DATASET.VIDEO_FPS = 1.0  # frames per second sampled from each unlabeled video (decoded lazily)

# (ours) embedded synthetic COCO-format set, generated under DATASET.ROOT on first use if ENABLED
_C.DATASET.SYNTHETIC = CN()
_C.DATASET.SYNTHETIC.ENABLED = False  # generate <ROOT>/coco procedurally if it is missing
_C.DATASET.SYNTHETIC.NUM_TRAIN = 1200  # training images
_C.DATASET.SYNTHETIC.NUM_VAL = 200  # validation images
_C.DATASET.SYNTHETIC.IMAGE_SIZE = [320, 240]  # generated image (width, height)
_C.DATASET.SYNTHETIC.SEED = 0  # generator seed
_C.DATASET.SYNTHETIC.PRESET = "hard"  # (ours) difficulty: hard (1-4 people, full clutter) or easy

# ---------------------------------------------------------------- training
_C.TRAIN = CN()
_C.TRAIN.LR_FACTOR = 0.1  # MultiStepLR gamma
_C.TRAIN.LR_STEP = [90, 110]  # MultiStepLR milestones (epochs)
_C.TRAIN.LR_SCHEDULER = "multistep"  # (ours) multistep (the original's, per epoch) or cosine
_C.TRAIN.WARMUP_ITERS = 0  # (ours) cosine: iterations of linear warm-up
_C.TRAIN.FINAL_LR_FACTOR = 0.0  # (ours) cosine: the last LR as a fraction of TRAIN.LR
_C.TRAIN.LR = 0.001  # base learning rate
_C.TRAIN.OPTIMIZER = "adam"  # 'adam' (lr only, no weight decay, as the original) or 'sgd'
_C.TRAIN.MOMENTUM = 0.9  # SGD momentum
_C.TRAIN.WD = 0.0001  # SGD weight decay (Adam ignores it, as the original)
_C.TRAIN.NESTEROV = False  # SGD Nesterov
_C.TRAIN.GAMMA1 = 0.99  # (unused by the original's losses and optimizer)
_C.TRAIN.GAMMA2 = 0.0  # (unused by the original's losses and optimizer)
_C.TRAIN.BEGIN_EPOCH = 0  # first epoch
_C.TRAIN.END_EPOCH = 140  # last epoch (exclusive)
_C.TRAIN.RESUME = True  # resume from <output>/checkpoint.pth.tar when it exists
_C.TRAIN.CHECKPOINT = ""  # (unused)
_C.TRAIN.BATCH_SIZE = 32  # batch per GPU (per process under DDP)
_C.TRAIN.SHUFFLE = True  # shuffle the training set
_C.TRAIN.MAX_ITERS = 0  # (ours) if > 0, stop each epoch after this many iterations
_C.TRAIN.LOSS_LIMIT = 1.0e6  # (ours) stop as for a NaN when the loss exceeds this (0: no bound)
_C.TRAIN.BF16 = False  # (ours) bf16 autocast of the training step (CUDA, and CPUs with bf16 units)
_C.TRAIN.CHANNELS_LAST = False  # (ours) channels_last memory format for the model and its inputs
_C.TRAIN.COMPILE = False  # (ours) torch.compile the networks
_C.TRAIN.FUSED_ADAM = False  # (ours) Adam's fused CUDA kernel (no effect on CPU or with SGD)

# ---------------------------------------------------------------- testing
_C.TEST = CN()
_C.TEST.BATCH_SIZE = 32  # batch per GPU
_C.TEST.INTERVAL = 1  # validate every N epochs (and after the last)
_C.TEST.FLIP_TEST = False  # average with the flipped image's heatmap
_C.TEST.POST_PROCESS = True  # refine the argmax ('shift' quarter offset or 'dark')
_C.TEST.SHIFT_HEATMAP = True  # shift the flipped heatmap by one pixel
_C.TEST.POST_TYPE = "shift"  # 'shift' or 'dark'
_C.TEST.BLUR_KERNEL = 11  # Gaussian kernel of the 'dark' post-processing
_C.TEST.USE_GT_BBOX = False  # evaluate on GT person boxes (else detections)
_C.TEST.OKS_THRE = 0.5  # OKS-NMS threshold
_C.TEST.IN_VIS_THRE = 0.0  # joints above this score enter the rescoring mean
_C.TEST.COCO_BBOX_FILE = ""  # person detection results json
_C.TEST.BBOX_THRE = 1.0  # (unused)
_C.TEST.MODEL_FILE = ""  # checkpoint evaluated by valid.py
_C.TEST.IMAGE_THRE = 0.0  # minimum detection score
_C.TEST.NMS_THRE = 1.0  # (unused) stored by the datasets
_C.TEST.SAVE_RESULT = True  # write the results json (and the COCOeval pickle)
_C.TEST.METRIC = "oks"  # (ours) 'custom' sets: 'oks' (COCOeval AP with the metainfo's sigmas)
# or 'pck' (PCK@TEST.PCK_THRESHOLD of the GT box's longer side; needs TEST.USE_GT_BBOX)
_C.TEST.PCK_THRESHOLD = 0.2  # (ours) PCK distance threshold, a fraction of the box's longer side
_C.TEST.SELECT_BY = "net1"  # (ours) model_best by 'net1', 'mean' (of the nets) or 'ensemble'

# ---------------------------------------------------------------- debug images
_C.DEBUG = CN()
_C.DEBUG.DEBUG = False  # write debug images
_C.DEBUG.SAVE_BATCH_IMAGES_GT = False  # input batch with GT joints
_C.DEBUG.SAVE_BATCH_IMAGES_PRED = False  # input batch with predicted joints
_C.DEBUG.SAVE_HEATMAPS_GT = False  # GT heatmaps over the input
_C.DEBUG.SAVE_HEATMAPS_PRED = False  # predicted heatmaps over the input

# ---------------------------------------------------------------- (ours) collapse monitor
_C.MONITOR = CN()
_C.MONITOR.COLLAPSE_THRE = 0.1  # teacher collapsed if heatmap max < this on every trained joint

# ---------------------------------------------------------------- (ours) hard-view ops
# MultiAugs / SSPCM's batch augmentations (semipose.models.augment_ops, spec/SUCCESSORS.md §1.3).
_C.HARD_AUG = CN()
_C.HARD_AUG.OPS = []  # (ours) op sequence: JC JO SSCO CO CM MU JOCO JCCM; [] = JC if MASK_JOINT_NUM
# (ours) the op settings: one key per setting declared in semipose/common/hard_aug.py, with its
# default and meaning there (JO_JOINT_NUM, CO_HOLES, CM_HOLES, JCCM_CM_HOLES, MIXUP_ALPHA, JO_FIX,
# HOLE_FIX, RELATIVE, JOINT_POOL_FIX)
for _key, _default in hard_aug_config_defaults().items():
    _C.HARD_AUG[_key] = _default
_C.HARD_AUG.PATHS = []  # (ours) multi-path: list of op lists, one student pass each; [] = OPS
_C.HARD_AUG.PATH_REDUCTION = "sum"  # (ours) per-path consistency losses: 'sum' (MultiAugs), 'mean'

# ---------------------------------------------------------------- (ours) EMA (mean) teacher
_C.EMA = CN()
_C.EMA.ENABLED = False  # (ours) teachers = EMA copies of the students (PoseCons, PoseDual)
_C.EMA.DECAY = 0.999  # (ours) after each step: teacher = DECAY * teacher + (1 - DECAY) * student
_C.EMA.TEACHER_BN = "batch"  # (ours) teacher BN: 'batch' statistics (train mode) or 'running'

# ---------------------------------------------------------------- (ours) SSPCM (MODEL.NAME: sspcm)
# Three networks (spec/SUCCESSORS.md §2); defaults are the released recipes' values. The hard view
# is HARD_AUG.OPS ([SSCO] with JO_JOINT_NUM 2 in the recipes) or Joint Cutout (MASK_JOINT_NUM).
_C.SSPCM = CN()
_C.SSPCM.PCM = True  # (ours) position-inconsistency correction with the previous-epoch snapshot
_C.SSPCM.PCM_WARMUP_EPOCH = 0  # (ours) PCM in epochs > this; before: mean of the current teachers
_C.SSPCM.SNAPSHOT_EVAL_BN = False  # (ours) snapshot BN uses running stats (published: batch stats)
_C.SSPCM.SCORE_FILTER = True  # (ours) keep joints whose mean teacher maximum exceeds SCORE_THRE
_C.SSPCM.SCORE_THRE = 0.1  # (ours) threshold of the score filter (score_filter_thread)
_C.SSPCM.SCORE_DIFF_REWEIGHT = False  # (ours) weight joints by clamp(1 - |s_A - s_B|, 0, 1)
_C.SSPCM.DIST_FILTER = False  # (ours) student term: keep joints whose A-B argmax distance is small
_C.SSPCM.DIST_THRE = 0.6  # (ours) distance filter threshold, a fraction of the heatmap diagonal
_C.SSPCM.DIST_REWEIGHT = False  # (ours) student term: weight joints by 1 - distance / diagonal
_C.SSPCM.FILTER_OR = False  # (ours) with both filters: score OR distance mask on all three terms
_C.SSPCM.STUDENT_NUM_LAYERS = 0  # (ours) student ResNet depth (0 = MODEL.EXTRA.NUM_LAYERS)
_C.SSPCM.STUDENT_PRETRAINED = ""  # (ours) student init file ('' = MODEL.PRETRAINED if same depth)
_C.SSPCM.BEST_HEAD = "net1"  # (ours) head selecting model_best: net1, net2, student or ensemble

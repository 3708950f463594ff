#!/usr/bin/env bash
# The GPU measurements of the data-pipeline / end-to-end issue, in one run of under 8 minutes on a
# lent GPU with 16 CPU cores. Writes every log to $OUT and the table rows to $OUT/rows.md.
#
#   OUT=/some/folder bash bench/gpu_checks.sh
#
# 1. device-path equivalence on CUDA (crops within 1 uint8 level of cv2, targets identical);
# 2. per-core pipeline throughput on 640x480 JPEGs for each path (bench/data_pipeline.py);
# 3. end-to-end PoseDual R18 256x192 training with the real loader (bench/train_e2e.py), batch 32,
#    15 workers: the cv2 path, the crop cache + device warp, then with bf16 + channels_last +
#    fused Adam. Each command has its own time limit, so one failure leaves the others' figures.
set -u
OUT=${OUT:-output/gpu_checks}
mkdir -p "$OUT"
ROOT=${ROOT:-/tmp/semipose_e2e640}
CACHE=${CACHE:-/tmp/semipose_crop_cache}
WORKERS=${WORKERS:-15}
ITERS=${ITERS:-40}
start=$(date +%s)
run() {  # run NAME LIMIT_S CMD...: logs to $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  echo "== $name ($(($(date +%s) - start)) s elapsed)"
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  echo "   exit $? ; $(tail -n 4 "$OUT/$name.txt" | tr '\n' ' ')"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
python -c "import torch, cv2; print(torch.__version__, torch.version.cuda, cv2.__version__)" \
  >>"$OUT/gpu.txt" 2>&1
nproc >>"$OUT/gpu.txt"

run equivalence_cuda 120 python - <<'PY'
import numpy as np, torch
from semipose.dataset import gpu_pipeline as gp
from semipose.codecs import MSRAHeatmap
rng = np.random.default_rng(0)
img = rng.integers(0, 255, (480, 640, 3), np.uint8)
crops, windows = [], []
for _ in range(64):
    a = rng.uniform(0.3, 1.5)
    t = rng.uniform(-1, 1)
    m = np.array([[a * np.cos(t), -a * np.sin(t), rng.uniform(-200, 50)],
                  [a * np.sin(t), a * np.cos(t), rng.uniform(-200, 50)]])
    crops.append(gp.DeferredCrop.from_warp(img, m, (192, 256)))
    windows.append(gp.DeferredTarget(rng.integers(-8, 60, (24, 4)).astype(np.int32),
                                     rng.random(24) > 0.3))
cb, tb = gp.CropBatch.stack(crops), gp.TargetBatch.stack(windows)
codec = MSRAHeatmap(image_size=(192, 256), heatmap_size=(48, 64), sigma=2)
cpu = gp.render_crops(cb, (192, 256))
gpu = gp.render_crops(cb.to("cuda"), (192, 256)).cpu()
print("crop max diff cuda vs cpu (levels):", float((cpu - gpu).abs().max() * 255))
t_cpu = codec.batch_encode(tb.window, tb.active)
tgb = tb.to("cuda")
t_gpu = codec.batch_encode(tgb.window, tgb.active).cpu()
print("targets identical:", bool(torch.equal(t_cpu, t_gpu)))
r = gp.DeviceRenderer((192, 256), (48, 64), 2, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225],
                      "cuda")
torch.cuda.synchronize()
import time
t0 = time.perf_counter()
for _ in range(20):
    r(cb), r(tb)
torch.cuda.synchronize()
print(f"render 64 crops + targets on the GPU: {(time.perf_counter() - t0) / 20 * 1e3:.2f} ms")
PY
run pipeline_tests 120 env OMP_NUM_THREADS=1 python -m pytest -q -x tests/dataset/test_pipeline_paths.py
run data_pipeline 150 env OMP_NUM_THREADS=1 python bench/data_pipeline.py --section coco \
  --coco-images 60 --pairs 160 --rounds 3
E2E=(python bench/train_e2e.py --cfg experiments/synthetic/96x64_SYN_PoseDual_JointCut.yaml
     --root "$ROOT" --num-train 800 --size 256x192 --batch 32 --workers "$WORKERS"
     --iters "$ITERS" --warmup 5 --device cuda
     MODEL.EXTRA.NUM_DECONV_FILTERS "[256, 256, 256]" CUDNN.BENCHMARK true)
run e2e_cv2 90 "${E2E[@]}"
run e2e_cache_fill 90 "${E2E[@]}" DATASET.CROP_CACHE "$CACHE" DATASET.DEVICE_WARP true
run e2e_cache_device 90 "${E2E[@]}" DATASET.CROP_CACHE "$CACHE" DATASET.DEVICE_WARP true
run e2e_cache_device_bf16 90 "${E2E[@]}" DATASET.CROP_CACHE "$CACHE" DATASET.DEVICE_WARP true \
  TRAIN.BF16 true TRAIN.CHANNELS_LAST true TRAIN.FUSED_ADAM true

{
  echo "| run | pairs/s | step share | loader wait |"
  echo "|---|---|---|---|"
  for f in e2e_cv2 e2e_cache_device e2e_cache_device_bf16; do
    [ -f "$OUT/$f.txt" ] || continue
    p=$(grep -o 'pairs/s: [0-9.]*' "$OUT/$f.txt" | cut -d' ' -f2)
    s=$(grep -o 'step share of wall time: [0-9.]*' "$OUT/$f.txt" | awk '{print $NF}')
    w=$(grep -o 'loader wait share of wall time: [0-9.]*' "$OUT/$f.txt" | awk '{print $NF}')
    echo "| $f | ${p:--} | ${s:--} % | ${w:--} % |"
  done
  echo
  grep '^|' "$OUT/data_pipeline.txt" 2>/dev/null
} >"$OUT/rows.md"
cat "$OUT/rows.md"
echo "total $(($(date +%s) - start)) s"

# The two set-up commands of the README: `make test` and `make demo`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
STAMP := .make/install.stamp
DEMO_CFG ?= experiments/synthetic/demo/128x96_EASY_PoseDual_JointCut.yaml
# The demo trains under bf16 autocast + channels_last where that is faster (a CPU with AVX512-BF16
# or AMX units, or a GPU), else in fp32. Override with DEMO_FAST=0 or DEMO_FAST=1.
DEMO_FAST ?= auto
# After training, the demo draws the trained model's poses on the first DEMO_INFER_N synthetic val
# images (boxes from the synthetic detection file) into DEMO_INFER_OUT, then writes the run's
# demo_predictions.png (predictions beside the ground truth) and learning_curve.png and prints the
# final AP table.
DEMO_DATA ?= data/synthetic_easy/coco
DEMO_INFER_N ?= 4
DEMO_INFER_OUT ?= output/demo_infer
# Last, valid.py scores the trained model on a val set generated with another seed (its own folder
# under the run's valid/), so the AP is not a property of the 100 val images it was selected on.
DEMO_CHECK_SEED ?= 7
DEMO_CHECK_ROOT ?= data/synthetic_easy_seed$(DEMO_CHECK_SEED)

.PHONY: install build test demo lint clean

install: $(STAMP)
	@$(PYTHON) -c "import semipose, sys; sys.exit(not semipose.__file__.startswith('$(CURDIR)/'))" \
		2>/dev/null || { rm -f $(STAMP); $(MAKE) --no-print-directory $(STAMP); }

# Installs the requirements and the package (editable, with the Cython NMS); re-runs only when the
# packaging files change, so later calls are instant.
$(STAMP): requirements.txt pyproject.toml setup.py lib/semipose/nms/cpu_nms.pyx
	$(PIP) install -q --disable-pip-version-check -r requirements.txt
	$(PIP) install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
	@mkdir -p $(dir $(STAMP)) && touch $(STAMP)

build: install
	$(PYTHON) setup.py -q build_ext --inplace
	cd /tmp && $(PYTHON) -c "import semipose.nms.cpu_nms"

# One test worker per core (at most 8; pytest-xdist), each on one thread; the tests of a module
# stay on one worker so its fixtures are built once.
test: build
	$(PYTHON) -m pytest -q -n auto --maxprocesses 8 --dist loadscope --durations=15

demo: install
	@fast=$(DEMO_FAST); if [ "$$fast" = auto ]; then fast=$$($(PYTHON) -m semipose.engine.fastpath); fi; \
	if [ "$$fast" = 1 ]; then opts="TRAIN.BF16 true TRAIN.CHANNELS_LAST true"; \
		echo "demo: bf16 autocast + channels_last (native bf16 here)"; \
	else opts=""; echo "demo: fp32 (no native bf16 here, so bf16 autocast would be slower)"; fi; \
	$(PYTHON) pose_estimation/train.py --cfg $(DEMO_CFG) $$opts
	$(PYTHON) pose_estimation/infer.py --cfg $(DEMO_CFG) --images $(DEMO_DATA)/images/val2017 \
		--limit $(DEMO_INFER_N) --out $(DEMO_INFER_OUT) --bbox-thr 0.5 \
		--bbox-file $(DEMO_DATA)/person_detection_results/COCO_val2017_detections_AP_H_56_person.json
	$(PYTHON) -m semipose.apis.demo --cfg $(DEMO_CFG)
	@echo "the same model on a val set generated with another seed ($(DEMO_CHECK_SEED), never seen in training):"
	@$(PYTHON) pose_estimation/valid.py --cfg $(DEMO_CFG) DATASET.ROOT $(DEMO_CHECK_ROOT)/ \
		DATASET.SYNTHETIC.SEED $(DEMO_CHECK_SEED) DATASET.SYNTHETIC.NUM_TRAIN 1 PRINT_FREQ 0 \
		TEST.COCO_BBOX_FILE $(DEMO_CHECK_ROOT)/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json

lint:
	$(PYTHON) -m ruff check lib pose_estimation tests bench

clean:
	rm -rf .make build lib/semipose/nms/cpu_nms.c lib/semipose/nms/*.so

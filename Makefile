# The two set-up commands of the README: `make test` and `make demo`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
STAMP := .make/install.stamp
DEMO_CFG ?= experiments/synthetic/96x64_SYN_PoseDual_JointCut.yaml

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

test: build
	$(PYTHON) -m pytest -q

demo: install
	$(PYTHON) pose_estimation/train.py --cfg $(DEMO_CFG)

lint:
	$(PYTHON) -m ruff check lib pose_estimation tests bench

clean:
	rm -rf .make build lib/semipose/nms/cpu_nms.c lib/semipose/nms/*.so

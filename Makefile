# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv itself (quick when it exists).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo
DEMO_ADAPT_STEPS := 600

.PHONY: demo test test-fast lint setup browser clean-demo

$(BIN)/cycledeblur: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/cycledeblur

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The report's browser test drives Chromium: installed here when missing (as root, with apt), else that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } || \
		echo "chromium is not installed: the browser tests will be skipped"

test: lint browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

# The inner loop: everything but the tests marked slow (end-to-end benchmarks, multi-process runs, kills, exports).
test-fast: lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" tests

# The main job end to end on real photos, on the CPU: the bundled deblurrer zero-shot on held-out photos, then on
# medical scans, a domain it never saw, where it is adapted to the scans' blur from two unrelated folders (unpaired).
demo: setup
	rm -rf $(DEMO)
	$(BIN)/python -m cycledeblur.demo $(DEMO)/photos
	$(BIN)/cycledeblur synth --sharp $(DEMO)/photos/test --out $(DEMO)/test --kind mixed --seed 1 --noise 0.005 --paired
	# 1. Photos, zero-shot: the general model bundled with the package, no training.
	$(BIN)/cycledeblur deblur --model general $(DEMO)/test/blur --out $(DEMO)/general/deblurred
	$(BIN)/cycledeblur evaluate --model general --blur $(DEMO)/test/blur --sharp $(DEMO)/test/sharp --json $(DEMO)/general/evaluation.json
	$(BIN)/python -m cycledeblur.demo --figure $(DEMO)/test/blur $(DEMO)/general/deblurred $(DEMO)/test/sharp $(DEMO)/general/before-after.png
	# 2. Scans (CT, MR, radiographs): bands of each scan for training (unpaired: half blurred, half sharp), validation
	# and test pairs; Gaussian blur, as a soft lens or detector.
	$(BIN)/python -m cycledeblur.domain_examples splits medical $(DEMO)/scans/photos
	$(BIN)/cycledeblur synth --sharp $(DEMO)/scans/photos/train --out $(DEMO)/scans/train --kind gaussian --seed 0 --noise 0.005
	$(BIN)/cycledeblur synth --sharp $(DEMO)/scans/photos/val --out $(DEMO)/scans/val --kind gaussian --seed 1 --noise 0.005 --paired
	$(BIN)/cycledeblur synth --sharp $(DEMO)/scans/photos/test --out $(DEMO)/scans/test --kind gaussian --seed 2 --noise 0.005 --paired
	# 2a. Zero-shot on the scans.
	$(BIN)/cycledeblur deblur --model general $(DEMO)/scans/test/blur --out $(DEMO)/scans/general/deblurred
	$(BIN)/cycledeblur evaluate --model general --blur $(DEMO)/scans/test/blur --sharp $(DEMO)/scans/test/sharp --json $(DEMO)/scans/general/evaluation.json
	$(BIN)/python -m cycledeblur.demo --figure $(DEMO)/scans/test/blur $(DEMO)/scans/general/deblurred $(DEMO)/scans/test/sharp $(DEMO)/scans/general/before-after.png
	# 2b. Adapted (configs/adapt.yaml, shortened to fit the demo's budget): the 4 validation pairs score it every 100
	# steps and the best scoring is delivered, the start included.
	HF_HUB_OFFLINE=1 HF_DATASETS_CACHE=$(DEMO)/.cache $(BIN)/cycledeblur train --config configs/adapt.yaml \
		data.blur=$(DEMO)/scans/train/blur data.sharp=$(DEMO)/scans/train/sharp \
		data.val_blur=$(DEMO)/scans/val/blur data.val_sharp=$(DEMO)/scans/val/sharp train.keep_best=true \
		train.max_steps=$(DEMO_ADAPT_STEPS) train.val_every=100 output_dir=$(DEMO)/scans/adapted
	$(BIN)/cycledeblur deblur --model $(DEMO)/scans/adapted $(DEMO)/scans/test/blur --out $(DEMO)/scans/adapted/deblurred
	$(BIN)/cycledeblur evaluate --model $(DEMO)/scans/adapted --blur $(DEMO)/scans/test/blur --sharp $(DEMO)/scans/test/sharp --json $(DEMO)/scans/adapted/evaluation.json
	$(BIN)/python -m cycledeblur.demo --figure $(DEMO)/scans/test/blur $(DEMO)/scans/adapted/deblurred $(DEMO)/scans/test/sharp $(DEMO)/scans/adapted/before-after.png
	@echo "photos, zero-shot: $(DEMO)/general/evaluation.json, $(DEMO)/general/before-after.png"
	@echo "scans, zero-shot:  $(DEMO)/scans/general/evaluation.json, $(DEMO)/scans/general/before-after.png"
	$(BIN)/cycledeblur report $(DEMO)/scans/adapted
	@echo "scans, adapted:    $(DEMO)/scans/adapted/evaluation.json, $(DEMO)/scans/adapted/before-after.png"
	@echo "the adapted run:   $(DEMO)/scans/adapted/report.html (curves, samples, before/after, evaluation, config)"

# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv itself (quick when it exists).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: demo test test-fast lint setup clean-demo

$(BIN)/cycledeblur: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/cycledeblur

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

# The inner loop: everything but the tests marked slow (end-to-end benchmarks, multi-process runs, kills, exports).
test-fast: lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" tests

# The main job end to end on real photos, on the CPU: build data, blur it, train, deblur held-out photos, score.
demo: setup
	rm -rf $(DEMO)
	$(BIN)/python -m cycledeblur.demo $(DEMO)/photos
	$(BIN)/cycledeblur synth --sharp $(DEMO)/photos/train --out $(DEMO)/train --kind mixed --seed 0 --noise 0.005
	$(BIN)/cycledeblur synth --sharp $(DEMO)/photos/test --out $(DEMO)/test --kind mixed --seed 1 --noise 0.005 --paired
	# Zero-shot: the general model bundled with the package, no training.
	$(BIN)/cycledeblur deblur --model general $(DEMO)/test/blur --out $(DEMO)/general/deblurred
	$(BIN)/cycledeblur evaluate --model general --blur $(DEMO)/test/blur --sharp $(DEMO)/test/sharp --json $(DEMO)/general/evaluation.json
	$(BIN)/python -m cycledeblur.demo --figure $(DEMO)/test/blur $(DEMO)/general/deblurred $(DEMO)/test/sharp $(DEMO)/general/before-after.png
	# Unpaired training from scratch on the demo's unrelated blurred and sharp halves (configs/cpu-fast.yaml). One
	# compute thread: these tiny networks gain ~10% from a second one, which the data worker uses instead.
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_CACHE=$(DEMO)/.cache $(BIN)/cycledeblur train \
		--config configs/cpu-fast.yaml output_dir=$(DEMO)/run
	$(BIN)/cycledeblur deblur --model $(DEMO)/run $(DEMO)/test/blur --out $(DEMO)/deblurred
	$(BIN)/cycledeblur evaluate --model $(DEMO)/run --blur $(DEMO)/test/blur --sharp $(DEMO)/test/sharp --json $(DEMO)/evaluation.json
	$(BIN)/python -m cycledeblur.demo --figure $(DEMO)/test/blur $(DEMO)/deblurred $(DEMO)/test/sharp $(DEMO)/before-after.png
	@echo "zero-shot (general): $(DEMO)/general/evaluation.json, $(DEMO)/general/before-after.png"
	@echo "trained (unpaired):  $(DEMO)/evaluation.json, $(DEMO)/before-after.png, run folder $(DEMO)/run"

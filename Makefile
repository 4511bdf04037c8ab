# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv itself (quick when it exists).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: demo test setup clean-demo

$(BIN)/cycledeblur: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/cycledeblur

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

# The main job end to end on real photos, on the CPU: build data, blur it, train, deblur held-out photos, score.
demo: setup
	rm -rf $(DEMO)
	$(BIN)/python -m cycledeblur.demo $(DEMO)/photos
	$(BIN)/cycledeblur synth --sharp $(DEMO)/photos/train --out $(DEMO)/train --kind mixed --seed 0 --noise 0.005
	$(BIN)/cycledeblur synth --sharp $(DEMO)/photos/test --out $(DEMO)/test --kind mixed --seed 1 --noise 0.005 --paired
	# The CPU recipe of the quality benchmark. One compute thread: these tiny networks gain ~10% from a second
	# one, which the data worker uses instead.
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_CACHE=$(DEMO)/.cache $(BIN)/cycledeblur train \
		--config configs/cpu-fast.yaml output_dir=$(DEMO)/run
	$(BIN)/cycledeblur deblur --model $(DEMO)/run $(DEMO)/test/blur --out $(DEMO)/deblurred
	$(BIN)/cycledeblur evaluate --model $(DEMO)/run --blur $(DEMO)/test/blur --sharp $(DEMO)/test/sharp --json $(DEMO)/evaluation.json
	@echo "run folder:  $(DEMO)/run"
	@echo "sample grid: $$(ls $(DEMO)/run/samples/*.png | tail -n 1)"
	@echo "deblurred:   $(DEMO)/deblurred"

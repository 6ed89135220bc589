# faceaudit: the two Quick start commands.
#   make demo  - install what is needed into .venv and run the main job
#   make test  - install what is needed into .venv and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test bench calibrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dlib]' || $(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

SAMPLE := tests/data
demo: $(STAMP)
	$(VENV)/bin/faceaudit models
	$(VENV)/bin/faceaudit detect $(SAMPLE)/congress2018/B000944.jpg $(SAMPLE)/meds/S001-01-t10_01.jpg
	@echo "--- same member, 2018 vs 2014 portrait:"
	$(VENV)/bin/faceaudit compare $(SAMPLE)/congress2018/B000944.jpg $(SAMPLE)/congress2014/B000944.jpg
	@echo "--- two different members:"
	$(VENV)/bin/faceaudit compare $(SAMPLE)/congress2018/B000944.jpg $(SAMPLE)/congress2014/C000141.jpg

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) scripts/bench_engine.py

calibrate: $(STAMP)
	$(PY) scripts/calibrate.py --model sface
	$(PY) scripts/calibrate.py --model dlib

clean:
	rm -rf $(VENV) build *.egg-info

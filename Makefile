# faceaudit: the two Quick start commands.
#   make demo  - install what is needed into .venv and run the main job
#   make test  - install what is needed into .venv and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install milvus-server demo test lint bench calibrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dlib,ray,milvus,postgres]' || $(PY) -m pip install --quiet -e '.[test,dlib,milvus,postgres]' \
	  || $(PY) -m pip install --quiet -e '.[test,milvus,postgres]' || $(PY) -m pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

install: $(STAMP) milvus-server

# A real Milvus server for the tests and scripts/bench_milvus.py (started by scripts/_milvus_server.py): the
# `milvus` package (2.3 series) ships the standalone binary with embedded etcd and local storage. It
# lives in its own virtualenv, as its pymilvus 2.3 pins conflict with the project's pymilvus; it needs
# setuptools<81 (pkg_resources) and marshmallow<4. A failed install does not fail `make install`: the
# Milvus server tests then skip (fail under CI=true).
MILVUS_VENV ?= .venv-milvus
MILVUS_PINS := 'milvus==2.3.5' 'setuptools<81' 'marshmallow<4'
MILVUS_STAMP := $(MILVUS_VENV)/.installed-milvus-2.3.5
$(MILVUS_STAMP):
	($(PYTHON) -m venv $(MILVUS_VENV) && $(MILVUS_VENV)/bin/python -m pip install --quiet $(MILVUS_PINS) \
	  && touch $(MILVUS_STAMP)) || echo "warning: could not install the Milvus server into $(MILVUS_VENV)"

milvus-server: $(MILVUS_STAMP)

SAMPLE := tests/data
DEMO_SAMPLE := examples/sample/manifests
DEMO_OUT := out/demo
demo: export FACEAUDIT_DATA_DIR := $(abspath out/demo-data)
DEMO_CACHE := out/sample-embeddings.sqlite
demo: $(STAMP)
	@echo "faceaudit: open face recognition with the ACLU's 2018 test built in. This demo detects and"
	@echo "compares faces on bundled public-domain photos, then runs the test on a 480-photo sample."
	@echo "--- the face models (\`faceaudit models\` for their calibration tables):"
	$(VENV)/bin/faceaudit models --brief
	$(VENV)/bin/faceaudit detect $(SAMPLE)/congress2018/B000944.jpg $(SAMPLE)/meds/S001-01-t10_01.jpg
	@echo "--- same member, 2018 vs 2014 portrait:"
	$(VENV)/bin/faceaudit compare $(SAMPLE)/congress2018/B000944.jpg $(SAMPLE)/congress2014/B000944.jpg
	@echo "--- two different members:"
	$(VENV)/bin/faceaudit compare $(SAMPLE)/congress2018/B000944.jpg $(SAMPLE)/congress2014/C000141.jpg
	@echo "--- the ACLU's test on the public-domain sample (examples/sample):"
	$(VENV)/bin/faceaudit audit --probes $(DEMO_SAMPLE)/congress_2018.csv \
	  --gallery $(DEMO_SAMPLE)/congress_2014.csv $(DEMO_SAMPLE)/former_members.csv \
	  --bands age=40,50,60,70 --out $(DEMO_OUT) --cache $(DEMO_CACHE) \
	  --note "Sample: 160 official 2018 portraits of members of the 115th Congress searched against 120 of their 2014 portraits and 200 official portraits of former members (all public domain). Women are over-represented on purpose (70 of 160) so that per-sex rates rest on more than a handful of people." \
	  --note "Former members, the strangers in this gallery, skew toward older white men; their sex is known for only 100 of the 200 here." \
	  --note "There are no race labels for members of Congress in this data, so the ACLU's finding that people of color were over-represented among its false matches cannot be tested here."
	@echo "Report: file://$(abspath $(DEMO_OUT))/report.html"

test: lint $(STAMP) milvus-server
	$(PY) -m pytest -q

# The static gates (rule set and settings in pyproject.toml): ruff on the code, tests and scripts,
# mypy on src/ (strict for service/ and collections/); `make test` runs them first.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) scripts/bench_engine.py

calibrate: $(STAMP)
	$(PY) scripts/calibrate.py --model sface
	$(PY) scripts/calibrate.py --model dlib

clean:
	rm -rf $(VENV) $(MILVUS_VENV) build *.egg-info

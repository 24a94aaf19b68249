VENV ?= .venv
PY := $(VENV)/bin/python
RECSYS := $(VENV)/bin/recsys
TEST_WORKERS ?= 2

.PHONY: setup setup-spark demo serve test test-all lint docs docs-serve clean bench-ingest fetch-movielens bench-movielens reproduce-movielens

# recsys_cli/__init__.py holds the version, which the installed metadata copies.
$(VENV)/.installed: pyproject.toml scripts/setup_venv.sh recsys_cli/__init__.py
	VENV=$(VENV) ./scripts/setup_venv.sh
	touch $@

setup: $(VENV)/.installed

## The venv with the spark extra too (engine=spark; needs Java 17+), as CI has it.
setup-spark: $(VENV)/.installed
	VENV=$(VENV) EXTRAS=dev,spark ./scripts/setup_venv.sh

## Synthetic shop -> lake -> time split -> point-in-time features -> leakage proof -> EASE -> top-10
## -> full evaluation with an HTML report -> model package pushed to the registry -> promoted to production
## -> served over HTTP: one request, one purchase event, the same request again, then stopped.
demo: setup
	$(RECSYS) datasets synth
	$(RECSYS) ingest
	$(RECSYS) lake describe data/lake/synth --verify --brief
	$(RECSYS) split
	$(RECSYS) features
	$(RECSYS) check-leakage
	$(RECSYS) train model=ease
	$(RECSYS) recommend $$(ls -d runs/ease/* | tail -1) --k 10
	$(RECSYS) evaluate $$(ls -d runs/ease/* | tail -1)
	$(RECSYS) export $$(ls -d runs/ease/* | tail -1)
	$(RECSYS) registry promote synth-ease latest --alias production
	$(PY) scripts/demo_serve.py

## The model promoted to production (after `make demo`: synth-ease) over HTTP on 127.0.0.1:8000,
## in the foreground until Ctrl+C. /events and /admin need $RECSYS_API_KEY; without one the
## service runs open (serve.auth=false), on loopback only. More settings: SERVE_ARGS="--port 9000".
serve: setup
	$(RECSYS) serve $(if $(RECSYS_API_KEY),,serve.auth=false) $(SERVE_ARGS)

## The suite on TEST_WORKERS processes (pytest-xdist; 0 = in this process). A test file
## stays on one worker, so its module fixtures are built once; files go out in collection
## order (tests/conftest.py puts the ones that take minutes first), not by test count.
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=10

test-all: setup
	$(PY) -m pytest -q -m "not gpu"

lint: setup
	$(VENV)/bin/ruff check recsys_cli tests scripts
	$(VENV)/bin/mypy

## The docs site (MkDocs, Material) into site/: the README as its home page, the guide and
## tutorials in docs/, references generated from the code (scripts/docs_*.py). --strict turns a
## broken link, a missing page or a page outside the nav into an error, as tests/docs/test_site.py does.
docs: setup
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict --site-dir site

## The same site on http://127.0.0.1:8001, rebuilt on every change.
docs-serve: setup
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

fetch-movielens: setup
	./scripts/fetch_movielens100k.sh

bench-ingest: setup
	$(PY) scripts/bench_ingest.py

## Model quality on MovieLens-100K (P1/P2/P3); resumes from bench_data/movielens/cache.json.
## Pass options through BENCH_ARGS, e.g. BENCH_ARGS="--models baselines,bpr_mf --protocols p2".
bench-movielens: fetch-movielens
	$(PY) scripts/bench_movielens.py $(BENCH_ARGS)

## Rerun the MovieLens-100K headline models (BENCHMARKS.md: P3's SASRec+EASE blend, 5 min; P2's
## ranker with user profiles, 4 rolling-origin folds, about 30 min on 2 shared vCPUs) and fail if
## their metrics drift from the recorded ones.
reproduce-movielens: fetch-movielens
	OMP_NUM_THREADS=1 $(RECSYS) reproduce experiments/movielens100k_sasrec_ease_blend.yaml \
		--workdir bench_data/reproduce/movielens100k_sasrec_ease_blend
	$(RECSYS) reproduce experiments/movielens100k_ranker_lgbm_profile.yaml \
		--workdir bench_data/reproduce/movielens100k_ranker_lgbm_profile

clean:
	rm -rf data/raw/synth data/lake/synth data/splits/synth data/features/synth data/live runs registry site .pytest_cache

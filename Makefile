# The README's two commands: `make up` runs the fleet, `make test` runs the tests.
.DEFAULT_GOAL := help

.PHONY: help bootstrap up test lint format

help:
	@echo "make up     - run the whole fleet locally (API :8000, one worker per queue, Beat, Valkey, SMTP sink)"
	@echo "make test   - run the test suite (starts its own valkey-server, SMTP server, PostgreSQL, workers)"
	@echo "make lint   - ruff"
	@echo "make images - build the seven service images with podman (root; see docs/images.md)"
	@echo "make kube-play - run the rendered chart as pods under podman kube play and submit a job end to end"

bootstrap:
	@./scripts/bootstrap

up: bootstrap
	@./infra/run-local

test: bootstrap
	uv run pytest

lint: bootstrap
	uv run ruff check .
	uv run ruff format --check .

format:
	uv run ruff format .
	uv run ruff check --fix .

.PHONY: bench
bench: bootstrap  ## the benchmark suite: fleet vs bare Celery, one table of ratios (var/bench/report.md)
	uv run python bench/suite.py $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: bootstrap  ## the suite on small counts (a smoke check, not a measurement)
	uv run python bench/suite.py --quick --out var/bench/quick.md

.PHONY: bench-matching
bench-matching: bootstrap  ## matching scoring throughput: companies/s and grants/s
	uv run python bench/bench_matching.py

.PHONY: chaos
chaos: bootstrap  ## long reliability scenarios on real processes; table in var/chaos/report.md
	TASKFLEET_CHAOS=1 uv run pytest tests/chaos -v -p no:cacheprovider --durations=0

.PHONY: typecheck
typecheck: bootstrap  ## mypy: strict on core, typed defs everywhere (0 errors is the bar, CI runs it)
	uv run mypy services/*/src

.PHONY: images
images: bootstrap  ## the seven service images (+ Valkey, PostgreSQL, SMTP sink) with podman on local bases; sizes printed
	./scripts/build-images $(SERVICES)

.PHONY: kube-play
kube-play: images  ## the rendered chart as pods under podman kube play: job -> worker -> SMTP sink, probes, drain
	TASKFLEET_KUBE_PLAY=1 uv run pytest tests/kube -v -p no:cacheprovider

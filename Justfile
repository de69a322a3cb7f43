# hostsmith's front door. Every recipe makes the virtualenv it needs.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
python := venv / "bin" / "python"
hostsmith := venv / "bin" / "hostsmith"

# List the recipes
default:
    @just --list

# Create .venv and install hostsmith with its development tools (skipped when up to date)
setup:
    @test -x {{python}} || python3 -m venv {{venv}}
    @if [ ! -f {{venv}}/.installed ] || [ pyproject.toml -nt {{venv}}/.installed ]; then \
        {{python}} -m pip install --quiet --disable-pip-version-check --upgrade pip && \
        {{python}} -m pip install --quiet --disable-pip-version-check -e '.[dev]' && \
        touch {{venv}}/.installed {{venv}}/.installed-daemon; \
    fi

# Create .venv and install hostsmith with only what the daemon needs: no test tools (skipped when up to date)
install:
    @test -x {{python}} || { echo "hostsmith: creating the virtualenv .venv with $(python3 --version)"; python3 -m venv {{venv}}; }
    @if [ ! -f {{venv}}/.installed-daemon ] || [ pyproject.toml -nt {{venv}}/.installed-daemon ]; then \
        echo "hostsmith: installing hostsmith and what the daemon needs into .venv (a minute the first time)"; \
        {{python}} -m pip install --disable-pip-version-check --progress-bar off -e . \
            | grep --line-buffered -E '^(Collecting|Successfully installed)' || true; \
        {{python}} -c 'import hostsmith.actors.cli' && touch {{venv}}/.installed-daemon && \
        echo "hostsmith: installed; starting the daemon"; \
    fi

# Run the daemon on the embedded defaults: SQLite in ~/.local/share/hostsmith, the simulated cloud, the example templates
run *ARGS: install
    {{hostsmith}} serve {{ARGS}}

# Lint and type-check, then run the whole test suite
test: lint
    {{python}} -m pytest -n 2

# Every test at smaller sizes (fewer seeds, examples, events and kills), on both cores
test-quick: setup
    {{python}} -m pytest --quick -n 2 -q

# Only the tests not marked slow: no real processes, no long runs
test-fast: setup
    {{python}} -m pytest -m "not slow" -n 2 -q

# ruff (lint and format check) and strict mypy on runtime/, stores/ and actors/
lint: setup
    {{venv}}/bin/ruff check .
    {{venv}}/bin/ruff format --check .
    @mkdir -p {{venv}}/typecheck/hostsmith
    @ln -sfn ../../../runtime {{venv}}/typecheck/hostsmith/runtime
    @ln -sfn ../../../stores {{venv}}/typecheck/hostsmith/stores
    @ln -sfn ../../../actors {{venv}}/typecheck/hostsmith/actors
    {{venv}}/bin/mypy

# The benchmarks from the issues, beside the peer (eventsourcing) in the same session
bench: setup
    @{{python}} -m pip install --quiet --disable-pip-version-check -e '.[bench]'
    @rm -rf .hostsmith/bench && mkdir -p .hostsmith/bench
    {{hostsmith}} loadtest --workload counter --store sqlite://./.hostsmith/bench/throughput.db --aggregates 1000 --commands 200000 --concurrency 1000 --json
    {{hostsmith}} loadtest --workload counter --store sqlite://./.hostsmith/bench/latency.db --aggregates 1000 --commands 100000 --concurrency 100 --json
    {{hostsmith}} loadtest --workload counter --loop both --store sqlite://./.hostsmith/bench/loops.db --aggregates 1000 --commands 200000 --concurrency 1000 --json
    {{hostsmith}} loadtest --workload peer-eventsourcing --store sqlite://./.hostsmith/bench --aggregates 1000 --commands 20000 --json
    {{hostsmith}} loadtest --workload resident-memory --store sqlite://./.hostsmith/bench/memory.db --aggregates 100000 --json

# The crash suite: the real daemon under load, SIGKILLed at seeded moments, checked after each kill
crash *ARGS: setup
    {{hostsmith}} crash --kills 50 {{ARGS}}

# Deterministic simulation over many seeds, and the soak on virtual time
simulate *ARGS: setup
    {{hostsmith}} simulate --seeds 1000 {{ARGS}}

soak *ARGS: setup
    {{hostsmith}} soak {{ARGS}}

# Remove the virtualenv, caches and local data
clean:
    rm -rf {{venv}} .hostsmith .pytest_cache .mypy_cache .ruff_cache *.egg-info

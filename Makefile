# The Microprocesses kit. `make help` lists the targets.
#
# Everything the targets need is installed into the project by `make setup`: the Python
# tools (cargo-lambda, zig, cfn-lint, checkov, moto, awscli) into .venv at the versions
# pinned in tools/requirements.txt, and the rustup target for arm64 Lambdas.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
PYTHON ?= python3
export PATH := $(VENV)/bin:$(PATH)

ENV ?= local
# Lambda's name for this machine's architecture: the local environment runs these builds.
HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
LAMBDA_ARCHS := arm64 $(filter-out arm64,$(HOST_ARCH))
# The release CLI the targets below run, the one `make install` puts on the PATH; the tests
# run the debug build cargo makes for them.
CLI := target/release/microprocess
TEST_CLI := target/debug/microprocess
BINDIR ?= $(HOME)/.cargo/bin
SETUP_STAMP := $(VENV)/.setup-$(shell sha256sum tools/requirements.txt | cut -c1-16)

# The local AWS emulator (moto, through tools/emulator.py) that the `local` environment
# deploys to. Deploy and teardown of `local` start it when it is not running.
EMULATOR_PORT ?= 5000
EMULATOR_URL := http://127.0.0.1:$(EMULATOR_PORT)
EMULATOR_PID := target/emulator.pid
EMULATOR_LOG := target/emulator.log
LOCAL := $(filter local,$(ENV))
# `local` talks to the emulator (unless AWS_ENDPOINT_URL says otherwise) and asks nothing.
AWS_FOR_ENV := $(if $(LOCAL),AWS_ENDPOINT_URL=$${AWS_ENDPOINT_URL:-$(EMULATOR_URL)})
YES_FOR_ENV := $(if $(or $(LOCAL),$(YES)),--yes)

.PHONY: help setup fmt lint build build-cli release-cli install build-lambdas generate deploy diff teardown emulator-start emulator-stop run-local demo test chaos bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(SETUP_STAMP) ## Install the pinned tools into .venv and the arm64 rustup target

$(SETUP_STAMP): tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	rustup component add rustfmt clippy
	rustup target add aarch64-unknown-linux-gnu
	rm -f $(VENV)/.setup-* && touch $@

fmt: ## Format the Rust code
	cargo fmt --all

lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

build: build-cli release-cli build-lambdas ## Build the CLI (release), the demo service and the Lambda zips for every architecture

build-cli:
	cargo build -p microprocess-kit -p demo-service

release-cli:
	cargo build --release -p microprocess-kit --bin microprocess

install: release-cli ## Put the release `microprocess` on the PATH (BINDIR, ~/.cargo/bin by default)
	install -d $(BINDIR)
	install -m 755 $(CLI) $(BINDIR)/microprocess
	@echo "installed $(BINDIR)/microprocess ($$($(BINDIR)/microprocess --version))"

build-lambdas: setup ## Package splitter and forwarder with cargo-lambda into target/lambda/ARCH/
	@for arch in $(LAMBDA_ARCHS); do \
	  flag=$$([ $$arch = arm64 ] && echo --arm64 || echo --x86-64); \
	  echo "cargo lambda build ($$arch)"; \
	  cargo lambda build --release $$flag --output-format zip --lambda-dir target/lambda/$$arch -p splitter -p forwarder; \
	done

generate: release-cli build-lambdas ## Render dist/ENV (ENV=local by default; ENV=all for every environment)
	@if [ "$(ENV)" = all ]; then $(CLI) generate --all-envs; else $(CLI) generate --env $(ENV); fi

deploy: generate $(if $(LOCAL),emulator-start) ## Deploy dist/ENV (asks before each change set; YES=1 does not; ENV=local goes to the emulator)
	$(AWS_FOR_ENV) $(CLI) deploy --env $(ENV) $(YES_FOR_ENV)

diff: generate $(if $(LOCAL),emulator-start) ## Show what deploy ENV= would change, without changing it
	$(AWS_FOR_ENV) $(CLI) diff --env $(ENV)

teardown: release-cli $(if $(LOCAL),emulator-start) ## Delete every stack of an unprotected ENV and check nothing is left
	$(AWS_FOR_ENV) $(CLI) teardown --env $(ENV) $(YES_FOR_ENV)

emulator-start: setup ## Start the local AWS emulator on 127.0.0.1:EMULATOR_PORT (pid in target/emulator.pid)
	@mkdir -p target
	@if [ -f $(EMULATOR_PID) ] && kill -0 "$$(cat $(EMULATOR_PID))" 2>/dev/null; then \
	  echo "emulator running at $(EMULATOR_URL) (pid $$(cat $(EMULATOR_PID)))"; exit 0; \
	fi; \
	$(VENV)/bin/python tools/emulator.py -H 127.0.0.1 -p $(EMULATOR_PORT) > $(EMULATOR_LOG) 2>&1 & \
	echo $$! > $(EMULATOR_PID); \
	for i in $$(seq 1 150); do \
	  if (exec 3<>/dev/tcp/127.0.0.1/$(EMULATOR_PORT)) 2>/dev/null; then \
	    echo "emulator running at $(EMULATOR_URL) (pid $$(cat $(EMULATOR_PID)), log $(EMULATOR_LOG))"; exit 0; \
	  fi; \
	  kill -0 "$$(cat $(EMULATOR_PID))" 2>/dev/null || break; \
	  sleep 0.2; \
	done; \
	echo "the emulator did not start; $(EMULATOR_LOG) says:"; tail -20 $(EMULATOR_LOG); rm -f $(EMULATOR_PID); exit 1

run-local: release-cli emulator-start ## Run the deployed functions of ENV (local) against the emulator until Ctrl-C
	AWS_ENDPOINT_URL=$${AWS_ENDPOINT_URL:-$(EMULATOR_URL)} $(CLI) local run --env $(ENV)

emulator-stop: ## Stop the emulator started by emulator-start (everything in it is lost)
	@if [ -f $(EMULATOR_PID) ] && kill -0 "$$(cat $(EMULATOR_PID))" 2>/dev/null; then \
	  kill "$$(cat $(EMULATOR_PID))" && echo "emulator stopped"; \
	else \
	  echo "no emulator running"; \
	fi; \
	rm -f $(EMULATOR_PID)

demo: setup build ## From nothing to a finished run of credit-scores over 10,000 companies on this machine, then teardown
	tools/demo.sh

test: setup build-cli build-lambdas ## Lint, then every test (the emulator's own against plain moto, unit, snapshot, config, scanner, emulator)
	$(MAKE) lint
	$(VENV)/bin/python -m unittest discover -s tools -p 'test_*.py'
	cargo test --workspace --all-targets
	$(TEST_CLI) generate --all-envs --out-dir target/test-dist

chaos: setup ## Issue 5's headline run: CHAOS_ITEMS (100,000) items under 5xx, crashed forwarders and duplicates at once, audited
	CHAOS_ITEMS=$${CHAOS_ITEMS:-100000} cargo test -p kit-tests --test fault_matrix headline_chaos_run -- --ignored --nocapture --exact

bench: setup build ## Issue 6's benchmarks: cost per million, forwarder, splitter, generator, pipeline, fan-in, as one table (BENCH_SECTION=NAME runs one)
	cargo bench -p kit-tests --bench kit -- $(if $(BENCH_SECTION),--section $(BENCH_SECTION))

clean: emulator-stop ## Remove build output and bundles
	cargo clean
	rm -rf dist

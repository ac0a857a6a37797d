# hashrelay developer entry points. The local stack (Kafka, PostgreSQL, S3) runs as plain local
# processes managed by infra/stack.sh; data, logs and .stack/env live in .stack/ (see infra/README.md).
SHELL := /bin/bash
STACK_SH := infra/stack.sh
# The stack `make test` runs against: local (the processes of infra/stack.sh, the default) or
# containers (Kafka, PostgreSQL and s3proxy containers from `make images`, through testcontainers).
STACK ?= local
ifeq ($(filter $(STACK),local containers),)
$(error STACK must be local or containers, not '$(STACK)')
endif
# What the containers pass runs: full (every integration, image and fault test; run by hand) or ci
# (the files CONTAINERS_CI in vitest.config.ts names; what .ci/run runs).
SUITE ?= full
ifeq ($(filter $(SUITE),full ci),)
$(error SUITE must be full or ci, not '$(SUITE)')
endif
ifeq ($(STACK)-$(SUITE),local-ci)
$(error SUITE=ci narrows the containers pass: use it with STACK=containers)
endif
# Every target runs on Node 24: the machine's own when it is 24.x, else one infra/node.sh fetches
# from the npm registry into .stack/lib/node. npm, npx and the tests all find it first on PATH.
NODE_BIN := $(shell infra/node.sh)
ifeq ($(NODE_BIN),)
$(error no Node 24: infra/node.sh failed (see above))
endif
export PATH := $(NODE_BIN):$(PATH)
export KAFKAJS_NO_PARTITIONER_WARNING := 1
# `make up KAFKA_BROKERS=3` starts a three-broker KRaft cluster (infra/stack.sh HASHRELAY_KAFKA_BROKERS).
# Only a count given on the command line is read that way: KAFKA_BROKERS in the environment is the
# services' host:port list, and a command-line count must not reach them as one.
ifeq ($(origin KAFKA_BROKERS),command line)
export HASHRELAY_KAFKA_BROKERS := $(KAFKA_BROKERS)
unexport KAFKA_BROKERS
endif
# npm writes this file on every install: missing or older than package-lock.json means `npm ci`.
NODE_DEPS := node_modules/.package-lock.json

.PHONY: setup up down clean status

# Two runs on a fresh checkout both find the stamp stale: the lock makes the second wait for the
# first's `npm ci` (which empties node_modules first), then find the stamp fresh and skip its own.
$(NODE_DEPS): package-lock.json
	@mkdir -p .stack
	flock .stack/npm.lock bash -c '[ $@ -nt package-lock.json ] || { npm ci --no-audit --no-fund && touch $@; }'

## setup: node packages, Java/Maven/PostgreSQL checks and the Kafka and s3proxy jars
setup: $(NODE_DEPS)
	$(STACK_SH) setup

## up: start Kafka, PostgreSQL and S3 if not running, wait until healthy, write .stack/env
##   KAFKA_BROKERS=3: Kafka as a three-broker cluster (remembered until `make clean`; `make down` first to switch)
up: $(NODE_DEPS)
	$(STACK_SH) up

## down: stop the stack, keeping its data
down:
	$(STACK_SH) down

## clean: stop the stack and delete its data (keeps the downloaded jars in .stack/lib)
clean:
	$(STACK_SH) clean

## status: what runs and answers (exit status 0 only when all three are healthy)
status:
	$(STACK_SH) status

.PHONY: images

## images: build the hub, partner-sink and test stack images with docker or podman (infra/images/build.sh)
images:
	infra/images/build.sh

.PHONY: test test-unit typecheck lint format demo bench

## test: install what is needed, start the stack if it is not running, run every test, stop what it started
# Each vitest pass also writes a JSON report; on failure their failed tests are printed last,
# after the stack's shutdown messages, so the end of a CI log says what failed.
RESULTS := .stack/test-results
VITEST_REPORT = --reporter=default --reporter=json --outputFile.json=$(RESULTS)/$(1).json
ifeq ($(STACK),local)
test: setup
	$(STACK_SH) up
	@rm -rf $(RESULTS)/main.json $(RESULTS)/faults.json; status=0; export HASHRELAY_REQUIRE_PROMTOOL=1 HASHRELAY_REQUIRE_BROWSER=1; npx tsc --noEmit -p . && npx biome check . && \
	  npx vitest run $(call VITEST_REPORT,main) && \
	  HASHRELAY_FAULTS=1 npx vitest run $(call VITEST_REPORT,faults) || status=$$?; \
	  $(STACK_SH) stop-started; \
	  if [ $$status -ne 0 ]; then node test/support/failures.ts $(RESULTS)/main.json $(RESULTS)/faults.json; fi; exit $$status
else
## test STACK=containers: build the images (cached), then the integration and image tests and the
##   fault suite against containers started by testcontainers; the unit tests, type check and lint
##   are the main pass's. With podman, its Docker-API service runs only for the pass if not running.
##   SUITE=ci: only the files of CONTAINERS_CI in vitest.config.ts, as .ci/run runs it.
test: setup
	infra/images/build.sh
	@rm -rf $(RESULTS)/containers-$(SUITE).json $(RESULTS)/containers-$(SUITE)-faults.json; status=0; \
	  eval "$$(infra/images/engine.sh env)" && \
	  HASHRELAY_STACK=containers HASHRELAY_SUITE=$(SUITE) npx vitest run $(call VITEST_REPORT,containers-$(SUITE)) && \
	  HASHRELAY_STACK=containers HASHRELAY_SUITE=$(SUITE) HASHRELAY_FAULTS=1 npx vitest run $(call VITEST_REPORT,containers-$(SUITE)-faults) || status=$$?; \
	  infra/images/engine.sh stop-started; \
	  if [ $$status -ne 0 ]; then node test/support/failures.ts $(RESULTS)/containers-$(SUITE).json $(RESULTS)/containers-$(SUITE)-faults.json; fi; \
	  exit $$status
endif

## test-unit: the tests that need nothing running (no stack)
test-unit: $(NODE_DEPS)
	npx vitest run --project unit

typecheck: $(NODE_DEPS)
	npx tsc --noEmit -p .

## lint: Biome's linter and formatter check over the whole tree (format: apply its formatting)
lint: $(NODE_DEPS)
	npx biome check .

format: $(NODE_DEPS)
	npx biome check --write .

## bench: start the stack if needed, run every bench/*.ts (bench/run.sh), stop what it started.
##   BENCH="ingest" picks scripts; BENCH_ARGS="--count 50000" replaces their default arguments.
bench: $(NODE_DEPS)
	$(STACK_SH) up
	@status=0; BENCH='$(BENCH)' BENCH_ARGS='$(BENCH_ARGS)' bench/run.sh || status=$$?; \
	  $(STACK_SH) stop-started; exit $$status

## chaos: faults under load on a stack of its own (.chaos/stack: three brokers, PostgreSQL, S3, other ports),
##   then a reconciliation; exit 1 on any difference. MINUTES=10, SEED=<n> to repeat a schedule, CHAOS_ARGS=...
.PHONY: chaos chaos-short soak
## chaos-short: the two-minute chaos run (test/faults/chaos-short.test.ts) against the local stack
chaos-short: setup
	$(STACK_SH) up
	HASHRELAY_FAULTS=1 HASHRELAY_CHAOS_SHORT=1 npx vitest run

chaos: setup
	node test/chaos/chaos.ts --minutes $(or $(MINUTES),10) $(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

## soak: the chaos run's stream without faults; memory and lag plotted in bench-results/chaos-soak-*.svg (MINUTES=30)
soak: setup
	node test/chaos/chaos.ts --soak --minutes $(or $(MINUTES),30) $(CHAOS_ARGS)

## demo: install, start the stack and Prometheus, run every service on a synthetic workload, print what reached each partner
# Prometheus is started when it is installed (make setup installs it where it can); the demo says so when it is not.
demo: setup
	$(STACK_SH) up kafka pg s3 $$(command -v prometheus >/dev/null && echo prometheus)
	@status=0; node demo/demo.ts || status=$$?; \
	  $(STACK_SH) stop-started; exit $$status

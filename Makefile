# Tape: build, test and run. Installs Debian's librdkafka-dev (and kcat for the tests) when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SWIFT_TEST_FLAGS ?=

.PHONY: up deps test-deps build release test test-fast format bench-kafka clean demo

deps:
	@missing=""; \
	pkg-config --exists rdkafka 2>/dev/null || missing="$$missing librdkafka-dev pkg-config"; \
	pkg-config --exists zlib 2>/dev/null || missing="$$missing zlib1g-dev"; \
	pkg-config --exists snappy 2>/dev/null || missing="$$missing libsnappy-dev"; \
	pkg-config --exists liblz4 2>/dev/null || missing="$$missing liblz4-dev"; \
	pkg-config --exists libzstd 2>/dev/null || missing="$$missing libzstd-dev"; \
	command -v kcat >/dev/null 2>&1 || missing="$$missing kcat"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Test-only extras: kafka-python and aiokafka (independent, non-librdkafka Kafka clients) and
# confluent-kafka (librdkafka 2.16 bundled, with SASL/SSL) in a virtualenv
# of the repository's own (.venv; Debian's system pip refuses installs), chromium (the
# dashboard test) and promtool (the /metrics test: Debian package prometheus, ~100 MB installed,
# about 10 s; without recommends, so no node-exporter; where systemd runs, the prometheus
# service the package starts is stopped and disabled). The tests find .venv/bin/python3 first on PATH.
VENV := $(CURDIR)/.venv
test-deps: deps
	@python3 -c 'import venv, ensurepip' 2>/dev/null || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
	@[ -x $(VENV)/bin/python3 ] || python3 -m venv $(VENV)
	@$(VENV)/bin/python3 -c 'import kafka, confluent_kafka, aiokafka' 2>/dev/null || $(VENV)/bin/python3 -m pip install -q kafka-python==3.0.12 confluent-kafka==2.16.2 aiokafka==0.14.0
	@command -v openssl >/dev/null 2>&1 || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
	@command -v chromium >/dev/null 2>&1 || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	@command -v promtool >/dev/null 2>&1 || { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
	  && { ! command -v systemctl >/dev/null 2>&1 || $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || true; }; }

build: deps
	swift build

release: deps
	swift build -c release

# Tests come in two kinds (see README, "Tests"): pure ones (no child processes, no sockets
# between processes) and process ones: every target or class whose name ends in ProcessTests,
# and IntegrationTests.
PROCESS_TESTS := ProcessTests|^IntegrationTests\.

# Everything. `swift build --build-tests` builds every product, the `tape` binary included (the
# process tests run it; no test target depends on it), then the tests run without building again;
# the output ends with swift test's own summary.
test: test-deps
	swift build --build-tests
	PATH="$(VENV)/bin:$$PATH" swift test --skip-build $(SWIFT_TEST_FLAGS)

# The inner loop: the pure tests only (no kcat, kafka-python or chromium needed, no child runs),
# with a tenth of the seeded property and fuzz budgets (TAPE_TEST_BUDGET=quick; see TestBudget),
# XCTest cases in parallel (--parallel) beside swift-testing's own parallelism.
test-fast: deps
	swift build --build-tests
	TAPE_TEST_BUDGET=quick swift test --skip-build --parallel --skip '$(PROCESS_TESTS)' $(SWIFT_TEST_FLAGS)

# The main job: the whole pipeline in one process. `make up ARGS=--offline` uses the built-in simulator.
up: release
	.build/release/tape up $(ARGS)

# The committed style (.swift-format: 4 spaces, 160 columns), applied in place.
format:
	swift format format --in-place --recursive --configuration .swift-format Package.swift Sources Tests

bench-kafka: deps
	scripts/bench-kafka.sh

clean:
	rm -rf .build

# The Kafka tools alone (no broker or exchange needed; `make up` runs the pipeline): start a mock
# cluster, produce keyed zstd messages, read them back, show the topic.
demo: build
	@set -e; tmp=$$(mktemp -d); \
	.build/debug/tape mock-cluster --topic demo:3 > $$tmp/mock & pid=$$!; \
	trap "kill $$pid" EXIT; \
	for i in $$(seq 50); do [ -s $$tmp/mock ] && break; sleep 0.1; done; \
	B=$$(head -1 $$tmp/mock); echo "mock Kafka cluster at $$B"; \
	printf 'poloniex:BTC-USDT|{"price":"21614.59"}\npoloniex:ETH-USDT|{"price":"1612.1"}\n' | \
	  .build/debug/tape produce --brokers $$B --topic demo --key-delimiter '|' --compression zstd; \
	.build/debug/tape consume --brokers $$B --topic demo --from-beginning --exit-at-end --format json; \
	.build/debug/tape topics describe demo --brokers $$B

# Tape: build, test and run. Installs Debian's librdkafka-dev (and kcat for the tests) when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SWIFT_TEST_FLAGS ?=

.PHONY: deps build release test bench-kafka clean

deps:
	@missing=""; \
	pkg-config --exists rdkafka 2>/dev/null || missing="$$missing librdkafka-dev pkg-config"; \
	command -v kcat >/dev/null 2>&1 || missing="$$missing kcat"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	swift build

release: deps
	swift build -c release

test: deps
	swift build --build-tests
	swift test --skip-build $(SWIFT_TEST_FLAGS)

bench-kafka: deps
	scripts/bench-kafka.sh

clean:
	rm -rf .build

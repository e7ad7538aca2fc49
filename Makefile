# User-facing targets. The build itself is Meson + Ninja.
#   make        release build: build/herald
#   make run    install missing Debian packages, build, start the broker
#   make test   install missing packages, build with ASan+UBSan, run unit and
#               integration tests, print one summary line
#   make bench  build release + benchmark tools, run the Kafka benchmark
#   make bench-amqp  build release, run the AMQP benchmark next to RabbitMQ
#   make bench-amqp-features  build release, run the AMQP queue-feature benchmark
#               (dead-lettering, retry backoff, priorities, TTL, delayed exchange,
#               deep backlog) next to RabbitMQ

PY := /usr/bin/python3
RUN_ARGS ?=

.PHONY: all build deps run test test-unit test-integration bench bench-amqp bench-amqp-features clean

all: build

deps:
	@scripts/deps.sh build

build: deps
	@[ -f build/build.ninja ] || meson setup build --buildtype=release -Db_ndebug=true >/dev/null
	@ninja -C build herald

run: build
	./build/herald serve $(RUN_ARGS)

build-test/build.ninja:
	@meson setup build-test -Db_sanitize=address,undefined -Db_lundef=false >/dev/null

test:
	@scripts/deps.sh test
	@scripts/test.sh

bench:
	@scripts/deps.sh bench
	@[ -f build/build.ninja ] || meson setup build --buildtype=release -Db_ndebug=true >/dev/null
	@ninja -C build
	@bench/run_kafka_bench.sh

bench-amqp:
	@scripts/deps.sh bench
	@[ -f build/build.ninja ] || meson setup build --buildtype=release -Db_ndebug=true >/dev/null
	@ninja -C build
	@bench/run_amqp_bench.sh

bench-amqp-features:
	@scripts/deps.sh bench
	@[ -f build/build.ninja ] || meson setup build --buildtype=release -Db_ndebug=true >/dev/null
	@ninja -C build herald
	@bench/run_amqp_features.sh

clean:
	rm -rf build build-test build-clang

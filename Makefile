# Sluice: `make run` starts the whole pipeline on one machine; `make test` is
# what CI runs. Both install what they need themselves.

CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: run test fmt-check lint unit chart-test bench build

build:
	$(CARGO) build --workspace --bins

run:
	$(CARGO) build -p sluice-cli
	bash scripts/run.sh

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace --no-fail-fast

chart-test:
	bash scripts/chart-test.sh

test: fmt-check lint unit chart-test

# Benchmarks print each stage's figure next to a baseline measured in the
# same run, as a ratio. Not part of `make test`.
bench:
	$(CARGO) bench -p sluice-collector --bench ingest
	$(CARGO) bench -p sluice-archiver --bench archive_throughput
	bash crates/sluice-transcoder/bench/run.sh
	$(CARGO) bench -p sluice-loader --bench load
	$(CARGO) bench -p sluice-e2e --bench freshness

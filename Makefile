# The verbs of the project. `make demo` and `make test` are all a new user needs.

CARGO ?= cargo
PYTHON ?= python3
# Where the Postgres tests and the benchmark load (a scratch schema per test).
MDP_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
export MDP_TEST_POSTGRES_URL
# Where `make bench` and `make bench-check` write their figures, and the
# baseline `make bench-check` compares with (`make bench-baseline` records it).
BENCH_JSON ?= target/bench.json
BENCH_QUICK_JSON ?= target/bench-quick.json
BENCH_BASELINE ?= infra/bench/baseline.json
MDP_BENCH = RUST_LOG=$${RUST_LOG:-warn} $(CARGO) run --quiet --profile bench -p mdp -- bench --postgres-url $(MDP_TEST_POSTGRES_URL)
# Cases per property and seed of `make fuzz`.
MDP_FUZZ_CASES ?= 100000
MDP_FUZZ_SEED ?= random

.PHONY: demo run load report migrate test fuzz python-deps browser-deps lint fmt mdp build lambda-tools invoke measure-lambdas cost-model load-test deploy bench bench-check bench-baseline clean

## demo: the whole pipeline offline on bundled recorded responses, into ./data; also writes the
## HTML report (./data/reports/index.html) and prints its path
demo:
	$(CARGO) run --quiet -p mdp -- demo

## run: a live run, e.g. make run ARGS="--tickers AAPL,MSFT --start 2025-01-02 --end 2025-06-30"
run:
	$(CARGO) run --quiet -p mdp -- run $(ARGS)

## load: reload the warehouse from the curated lake (ARGS="--tickers AAPL")
load:
	$(CARGO) run --quiet -p mdp -- load $(ARGS)

## report: the offline HTML report of the lake, by default into its reports/ prefix
## (./data/reports/index.html); ARGS="--tickers AAPL,MSFT --out DIR|s3://BUCKET/PREFIX"
report:
	$(CARGO) run --quiet -p mdp -- report $(ARGS)

## migrate: create or upgrade the warehouse schema
migrate:
	$(CARGO) run --quiet -p mdp -- warehouse migrate

## test: every test of the workspace, the offline template check and the bench guard's own tests
## (needs the local Postgres; installs the Python tools and headless Chromium if missing)
test: python-deps browser-deps
	$(PYTHON) infra/check_template.py
	$(PYTHON) -m unittest discover -s infra/bench -p 'test_*.py'
	$(CARGO) test --workspace

## fuzz: the property tests (shared/*/tests/fuzz_*.rs; make test runs them with 10,000 cases each
## and a fixed seed) optimised, with more cases and a new seed each run:
## MDP_FUZZ_CASES (default 100000) and MDP_FUZZ_SEED (a number replays a run, or random)
fuzz:
	MDP_FUZZ_CASES=$(MDP_FUZZ_CASES) MDP_FUZZ_SEED=$(MDP_FUZZ_SEED) $(CARGO) test --release --no-fail-fast -p mdp-core -p mdp-lake --test 'fuzz_*'

python-deps:
	@$(PYTHON) -c "import pandas, polars, numpy, pyarrow, duckdb, moto, samtranslator, cfnlint" 2>/dev/null || $(PYTHON) -m pip install --quiet -r tests/requirements.txt

## browser-deps: headless Chromium (Debian's chromium) for the report's browser test, tests/report_browser.rs
browser-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## lint: formatting and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## mdp: the optimised mdp binary (target/release/mdp)
mdp:
	$(CARGO) build --release -p mdp

## build: the five Lambda packages, target/lambda/<function>/bootstrap.zip, for arm64
## (as template.yaml deploys them) when the Rust aarch64 target is installed, else for this host
build: lambda-tools
	@if [ -d "$$(rustc --print sysroot)/lib/rustlib/aarch64-unknown-linux-gnu" ]; then arch=--arm64; \
	else echo "note: the aarch64-unknown-linux-gnu target is not installed (rustup target add aarch64-unknown-linux-gnu); building for this host instead"; arch=--x86-64; fi; \
	$(CARGO) lambda build --release $$arch --output-format zip -p validate -p fetch -p transform -p load -p report
	@ls -l target/lambda/*/bootstrap.zip

lambda-tools:
	@command -v cargo-lambda >/dev/null || $(PYTHON) -m pip install --quiet cargo-lambda==1.9.2

## invoke: every function under `cargo lambda watch` with its events/ sample, against local
## S3/SQS/Secrets Manager (moto), the local chart server and Postgres (offline)
invoke: lambda-tools python-deps
	infra/local/invoke.sh

## measure-lambdas: cold start, handling time and peak memory of each function on a 20-year backfill
measure-lambdas: python-deps
	$(CARGO) build --release -p validate -p fetch -p transform -p load -p mdp
	$(PYTHON) infra/local/measure_lambdas.py

## cost-model: USD per 1,000 ticker-days from the figures of `make measure-lambdas` (.local/measure.json);
## MDP_COST_TICKERS (default 500) tickers in the daily run
MDP_COST_TICKERS ?= 500
cost-model:
	$(PYTHON) infra/local/cost_model.py --tickers $(MDP_COST_TICKERS)

## load-test: the four functions chained over moto's SQS/S3 with duplicate deliveries, optimised:
## MDP_LOAD_TEST_TICKERS (default 500) × MDP_LOAD_TEST_YEARS (default 10) of synthetic daily bars;
## MDP_LOAD_TEST_DUPLICATE_SHARE (0.25), _REDELIVER_SHARE (0.10), _SEED; report in target/load-test.json
load-test: python-deps
	$(CARGO) test --profile bench -p mdp-tests --test load_test -- --ignored --nocapture load_test_at_scale

## deploy: build with SAM (cargo-lambda) and deploy, asking for the parameters the first time
deploy: lambda-tools
	sam build
	sam deploy --guided

## bench: every figure of the performance goals (backfills, daily runs after 1 and 31 years,
## 500 tickers with peak memory, the tuning guide's query, mdp load vs psql \copy), into $(BENCH_JSON)
bench:
	$(MDP_BENCH) --json $(BENCH_JSON)

## bench-check: the quick bench (100 tickers) and its ratios against $(BENCH_BASELINE);
## fails when one got more than 2x worse (absolute times are only printed)
bench-check:
	$(MDP_BENCH) --quick --json $(BENCH_QUICK_JSON)
	$(PYTHON) infra/bench/check_bench.py $(BENCH_BASELINE) $(BENCH_QUICK_JSON)

## bench-baseline: record $(BENCH_BASELINE) as the median of three quick benches on this machine
## (review, then commit it)
bench-baseline:
	for run in 1 2 3; do $(MDP_BENCH) --quick --json target/bench-baseline-$$run.json || exit 1; done
	$(PYTHON) infra/bench/check_bench.py --record $(BENCH_BASELINE) target/bench-baseline-1.json target/bench-baseline-2.json target/bench-baseline-3.json

clean:
	rm -rf data

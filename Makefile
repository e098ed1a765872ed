# catalogd - one Makefile: build, run, test.
#   make run    install missing packages (as root; else print the apt-get line), build, serve :8000
#   make test   C unit tests, then the black-box API tests (they start their own Redis and
#               PostgreSQL) on SQLite, on PostgreSQL, and with several instances at once
#   make cluster  PostgreSQL, Redis, three instances and nginx on :8000; Ctrl-C stops it all
#   make chaos  randomized, overlapping faults under load (DURATION=s, default 180; SEED=n)

CC       ?= cc
# Debian's interpreter: the one its python3-pytest and friends are installed for.
PYTHON   ?= /usr/bin/python3
BUILD    ?= build
PKGS     := libh2o-evloop hiredis jansson sqlite3
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
            -Wcast-qual -Wformat=2
OPT      ?= -O2 -g
# libh2o-evloop.pc lacks -DH2O_USE_LIBUV=0; h2o's headers are not ours to keep warning-free.
CPPFLAGS += -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -Isrc -isystem /usr/include/hiredis \
            -isystem /usr/include/postgresql
CFLAGS   += -std=c11 $(OPT) $(WARNINGS) $(EXTRA_CFLAGS) -pthread
LDLIBS   += -lh2o-evloop -lssl -lcrypto -lz -lhiredis -ljansson -lsqlite3 -lpq -lm -pthread

# Debian packages: to build and run, then what the tests need on top.
DEBS_RUN  := build-essential pkg-config libh2o-evloop-dev libhiredis-dev libjansson-dev \
             libsqlite3-dev libpq-dev libssl-dev zlib1g-dev redis-server nodejs \
             $(if $(shell command -v npm),,npm)
# make cluster on top of DEBS_RUN: the write model's server and the load balancer (an nginx
# already installed, as Debian's nginx or nginx-full, will do).
DEBS_CLUSTER := postgresql curl $(if $(shell command -v nginx),,nginx-light)
DEBS_TEST := libcriterion-dev python3-pytest python3-requests python3-redis python3-jsonschema \
             curl chromium chromium-driver python3-selenium openssl nghttp2-client \
             postgresql python3-psycopg2 nginx-light

SRC      := $(shell find src -name '*.c' | sort)
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
LIB_OBJ  := $(filter-out $(BUILD)/src/main.o,$(OBJ))
UNIT_SRC := $(wildcard tests/unit/*.c)

.PHONY: all run cluster test unit api api-pg multi-instance chaos deps deps-test clean format \
        format-check bench asan fuzz

all: $(BUILD)/catalogd

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# openapi.json is linked into the binary as data, so GET /openapi.json serves the document
# kept in the repository, byte for byte.
$(BUILD)/openapi.o: openapi.json
	@mkdir -p $(dir $@)
	ld -r -b binary -z noexecstack -o $@ $<

# GET /docs (src/http/docs.c): Swagger UI from npm, pinned by docs/package-lock.json and
# installed by `npm ci` into $(BUILD)/docs (never into the repository; --ignore-scripts: no
# package runs code at install), then linked in as data with the page's own two files. The
# tag, a hash of everything embedded, is in every asset URL, so assets can be cached for good.
DOCS_NPM     := $(BUILD)/docs/node_modules/swagger-ui-dist
DOCS_EMBED   := $(BUILD)/docs/embed
DOCS_FILES   := $(DOCS_NPM)/swagger-ui.css $(DOCS_NPM)/swagger-ui-bundle.js \
                $(DOCS_NPM)/favicon-32x32.png docs/catalogd-docs.js $(DOCS_NPM)/LICENSE \
                $(DOCS_NPM)/NOTICE $(DOCS_NPM)/swagger-ui-bundle.js.LICENSE.txt

$(DOCS_NPM)/swagger-ui-bundle.js: docs/package.json docs/package-lock.json
	@rm -rf $(BUILD)/docs/node_modules && mkdir -p $(BUILD)/docs
	cp docs/package.json docs/package-lock.json $(BUILD)/docs/
	cd $(BUILD)/docs && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

$(filter-out docs/% $(DOCS_NPM)/swagger-ui-bundle.js,$(DOCS_FILES)): $(DOCS_NPM)/swagger-ui-bundle.js

$(BUILD)/docs.o: $(DOCS_FILES) docs/index.html Makefile
	@rm -rf $(DOCS_EMBED) && mkdir -p $(DOCS_EMBED)
	cp $(DOCS_FILES) $(DOCS_EMBED)/
	tag=$$(cat $(DOCS_FILES) docs/index.html | sha256sum | cut -c1-16) && \
		printf '%s' "$$tag" > $(DOCS_EMBED)/docs-tag && \
		sed "s/@TAG@/$$tag/g" docs/index.html > $(DOCS_EMBED)/docs-index.html
	cd $(DOCS_EMBED) && ld -r -b binary -z noexecstack -o $(abspath $@) docs-tag \
		docs-index.html $(notdir $(DOCS_FILES))

$(BUILD)/catalogd: $(OBJ) $(BUILD)/openapi.o $(BUILD)/docs.o
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(LDLIBS)

$(BUILD)/unit_tests: $(UNIT_SRC) $(LIB_OBJ) $(BUILD)/openapi.o $(BUILD)/docs.o
	$(CC) $(CPPFLAGS) $(CFLAGS) $^ -o $@ $(LDFLAGS) -lcriterion $(LDLIBS)

-include $(OBJ:.o=.d)

# Installs missing Debian packages when root, else names the one command to run.
deps:
	@scripts/ensure-debs.sh $(DEBS_RUN)
deps-test:
	@scripts/ensure-debs.sh $(DEBS_RUN) $(DEBS_TEST)

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh $(BUILD)/catalogd

# The scaled shape (issue 11) on this machine: a private PostgreSQL under ./var/cluster, Redis,
# three catalogd instances (8001-8003) and nginx balancing them on http://localhost:8000, with
# contrib/nginx/catalogd.conf. Ctrl-C stops all of it. Ports and directory: scripts/cluster.sh.
cluster: deps
	@scripts/ensure-debs.sh $(DEBS_CLUSTER)
	@$(MAKE) --no-print-directory all
	@scripts/cluster.sh $(BUILD)/catalogd

test: deps-test
	@$(MAKE) --no-print-directory all $(BUILD)/unit_tests
	$(BUILD)/unit_tests
	CATALOGD_REQUIRE_BROWSER=1 $(PYTHON) -m pytest -q -m "not multi_instance" tests/api
	CATALOGD_TEST_BACKEND=postgresql $(PYTHON) -m pytest -q -m "not multi_instance" tests/api
	$(PYTHON) -m pytest -q -m multi_instance tests/api

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests

# The API suite, each Stack on its own SQLite file (api) or on a fresh database of a private
# PostgreSQL the tests start themselves (api-pg; tests about the SQLite file are skipped with
# their reason). multi-instance: three catalogd on one PostgreSQL and one Redis.
api: all
	$(PYTHON) -m pytest -q -m "not multi_instance" tests/api

api-pg: all
	CATALOGD_TEST_BACKEND=postgresql $(PYTHON) -m pytest -q -m "not multi_instance" tests/api

multi-instance: all
	$(PYTHON) -m pytest -q -m multi_instance tests/api

# Randomized fault injection (issue 10, tests/chaos/): clients colliding over a few SKUs while
# Redis is frozen, wiped, restarted, squeezed and given keys of the wrong type, and catalogd is
# killed and rebuilt, all at once; read-your-writes, the write model, convergence, leaks, log
# and memory checked. DURATION seconds of faults (180); SEED=n reruns a run's fault schedule;
# FAULTS=kind,kind (or none) only those faults. BACKEND=postgresql INSTANCES=3: a private
# PostgreSQL, one Redis and that many instances (issue 11), with the faults of that shape
# (projector killed and frozen, PostgreSQL restarted, connections terminated). First the tests of the test itself (its
# checker, its wrong-type fault against a real Redis). Not part of `make test`.
chaos: deps-test
	@$(MAKE) --no-print-directory all
	$(PYTHON) -m pytest -q tests/chaos
	$(PYTHON) tests/chaos/chaos.py --duration $(or $(DURATION),180) $(if $(SEED),--seed $(SEED)) \
		$(if $(FAULTS),--faults $(FAULTS)) $(if $(BACKEND),--backend $(BACKEND)) \
		$(if $(INSTANCES),--instances $(INSTANCES))

# Side by side with the seed's rebuild and nginx (issue 5): writes BENCHMARKS.md and
# bench/results/. Knobs (REPS, DURATION, BIG=1, ...): bench/run.sh --help
bench:
	bench/run.sh

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer at
# exit). Every sanitizer report of any process, server or test binary, is written to
# build-asan/reports/ and fails the target.
ASAN_BUILD := build-asan
SANITIZE   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
asan: deps-test
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) OPT="-O1 -g $(SANITIZE)" \
		LDFLAGS="$(SANITIZE)" $(ASAN_BUILD)/catalogd $(ASAN_BUILD)/unit_tests
	@rm -rf $(ASAN_BUILD)/reports && mkdir -p $(ASAN_BUILD)/reports
	ASAN_OPTIONS=log_path=$(CURDIR)/$(ASAN_BUILD)/reports/asan:detect_leaks=1 \
	UBSAN_OPTIONS=log_path=$(CURDIR)/$(ASAN_BUILD)/reports/ubsan:print_stacktrace=1 \
		$(ASAN_BUILD)/unit_tests --jobs 1
	ASAN_OPTIONS=log_path=$(CURDIR)/$(ASAN_BUILD)/reports/asan:detect_leaks=1 \
	UBSAN_OPTIONS=log_path=$(CURDIR)/$(ASAN_BUILD)/reports/ubsan:print_stacktrace=1 \
	CATALOGD_BIN=$(CURDIR)/$(ASAN_BUILD)/catalogd $(PYTHON) -m pytest -q tests/api
	@if ls $(ASAN_BUILD)/reports/* >/dev/null 2>&1; then \
		echo "sanitizer reports:"; head -n 40 $(ASAN_BUILD)/reports/*; exit 1; fi
	@echo "asan: no sanitizer reports"

# Each libFuzzer target in fuzz/ for FUZZ_SECONDS on a scratch copy of its corpus; any crash
# fails (CI: make fuzz FUZZ_SECONDS=60). Details in fuzz/README.md.
FUZZ_SECONDS ?= 10
fuzz:
	@scripts/ensure-debs.sh clang libclang-rt-14-dev libjansson-dev libhiredis-dev
	$(MAKE) --no-print-directory -C fuzz run SECONDS=$(FUZZ_SECONDS)

format:
	clang-format -i $(SRC) $(shell find src tests/unit -name '*.h' -o -name '*.c')
format-check:
	clang-format --dry-run --Werror $(shell find src tests/unit -name '*.h' -o -name '*.c')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

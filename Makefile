# jobq: PostgreSQL extension (extension/, bgworker/), install script (sql/), sidecar (http/).
#
#   make            build jobq.so, the install script and jobq-http
#   make install    install them into the PostgreSQL found by pg_config
#   make test       install missing packages, build, install, run every test
#   make run        start a local PostgreSQL with jobq (and the sidecar) under ./.run
#   make clean
#
# Without postgresql-server-dev-15 the PGXS part is skipped; `make test` and `make run`
# install it first (scripts/deps.sh) and then call make again.

PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)

MODULE_big = jobq
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard extension/*.c bgworker/*.c)))
DATA = extension/jobq.control
MODULEDIR = extension
DATA_built = sql/jobq--0.1.0.sql
PG_CPPFLAGS = -I$(srcdir)/extension
EXTRA_CLEAN = results regression.diffs regression.out test/isolation/output_iso

# Debian's PGXS would also build LLVM bitcode with clang-14; jobq does not need JIT inlining.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all install:
	@echo "PostgreSQL's server headers are missing: run scripts/deps.sh (as root) first" >&2; exit 1
clean:
	rm -f $(OBJS) $(DATA_built) jobq.so
endif

# The install script is assembled from its parts, in file name order.
SQL_PARTS = $(sort $(wildcard sql/src/*.sql))
sql/jobq--0.1.0.sql: $(SQL_PARTS)
	cat $(SQL_PARTS) > $@

# The sidecar has its own Makefile.
.PHONY: http http-install http-clean test run
all: http
install: http-install
clean: http-clean
http:
	@if [ -f http/Makefile ]; then $(MAKE) -C http; fi
http-install:
	@if [ -f http/Makefile ]; then $(MAKE) -C http install; fi
http-clean:
	@if [ -f http/Makefile ]; then $(MAKE) -C http clean; fi

test:
	@bash test/run.sh

run:
	@bash scripts/run.sh

.PHONY: bench
bench:
	@bash bench/run.sh

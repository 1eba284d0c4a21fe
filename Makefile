# vigil: `make demo` and `make test` work from a clean clone on Debian 12, as root.
SHELL := /bin/bash
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
SETUP_LOG := build/setup.log
# The Debian packages the daemon and the tests use, and who uses them: python3-venv (.venv),
# iproute2 (ip, ss, bridge: the lab's namespaces), nftables (the lab cuts links with nft),
# procps (ps, pgrep, sysctl), util-linux (nsenter, unshare, findmnt), mount (losetup, mount),
# openssl (the API test's certificate), fence-agents (fence_dummy), socat (serial pty pairs,
# the lab's forwards), resource-agents (OCF Dummy, IPaddr2), e2fsprogs (mkfs.ext4), chromium
# and chromium-driver (the dashboard's browser test), conntrackd (the balancer's connection
# sync) and conntrack (its test reads the kernels' tables), postgresql-15 (the replicated
# database of issue 15: its server, pg_basebackup, pg_rewind, and libpq for psycopg).
# Installed without recommended packages.
DEBS := python3-venv iproute2 nftables procps util-linux mount openssl fence-agents socat \
	resource-agents e2fsprogs chromium chromium-driver conntrackd conntrack postgresql-15
PYTEST := $(VENV)/bin/python -m pytest -q -p no:cacheprovider --durations=15

# One set-up step: say it, run it with its output in $(SETUP_LOG), show the log's end if it fails.
define step
	@echo "setup: $(1)"; echo "== $(1)" >>$(SETUP_LOG)
	@$(2) >>$(SETUP_LOG) 2>&1 || { echo "setup: $(1): failed; the end of $(SETUP_LOG):" >&2; \
	  tail -n 25 $(SETUP_LOG) >&2; exit 1; }
endef

# The test runs' temporary files (pytest's tmp_path, the lab's directories, the browser's
# profile) go to one directory of their own, removed afterwards: nothing is left in /tmp.
# KEEP_TMP=1 keeps it (its path is printed), to look at what a failed test left. Mode 0755
# as /tmp is searchable: tests that drop to nobody must reach the sockets they make there.
define with_tmp
	tmp=$$(mktemp -d -t vigil-test.XXXXXX) && chmod 755 "$$tmp" || exit 1; \
	trap 'if [ -n "$(KEEP_TMP)" ]; then echo "test: kept $$tmp"; else rm -rf "$$tmp"; fi' EXIT; \
	export TMPDIR=$$tmp;
endef

.PHONY: all deps venv demo test unit integration bench bench-failover bench-partition \
	bench-agents bench-idle bench-lb bench-pg bench-deps soak clean

all: venv

# The Debian packages above that are missing, and nothing else (tools/debs.sh says how many
# packages and how large before it starts).
deps:
	@tools/debs.sh $(SETUP_LOG) $(DEBS)

$(STAMP): pyproject.toml | deps
	@mkdir -p $(dir $(SETUP_LOG))
	$(call step,python3 -m venv $(VENV),$(PYTHON) -m venv $(VENV))
	$(call step,pip install --upgrade pip,$(VENV)/bin/pip install -q --upgrade pip)
	$(call step,pip install -e '.[test]': vigil and its test tools (pytest hypothesis mypy \
	  pillow prometheus_client selenium),$(VENV)/bin/pip install -q -e '.[test]')
	@touch $(STAMP)

venv: deps $(STAMP)
	@echo "setup: done ($(VENV); set-up output in $(SETUP_LOG))"

demo: venv
	$(VENV)/bin/python -m vigil.lab.demo

test: venv
	@echo "test: mypy --strict src/vigil"
	@$(VENV)/bin/mypy
	@$(with_tmp) \
	echo "test: unit tests (tests/unit)"; \
	$(PYTEST) tests/unit; unit=$$?; \
	echo "test: integration tests (tests/integration: root, network namespaces, real daemons)"; \
	$(PYTEST) tests/integration; integration=$$?; \
	[ $$unit = 0 ] || echo "test: the unit tests FAILED (above)"; \
	[ $$integration = 0 ] || echo "test: the integration tests FAILED (above)"; \
	[ $$unit = 0 ] && [ $$integration = 0 ]

unit: venv
	@$(with_tmp) $(PYTEST) tests/unit

integration: venv
	@$(with_tmp) $(PYTEST) tests/integration

# An hour of random faults on a test cluster (README: "Torture"), then a long fuzz.
soak: venv
	$(VENV)/bin/vigil torture --duration 60m --out torture-soak
	VIGIL_FUZZ_EXAMPLES=50000 $(VENV)/bin/python -m pytest -q -p no:cacheprovider \
	  tests/unit/test_fuzz.py

# The README's figures; each part also runs alone (about 25, 45, 5, 3, 8 and 25 minutes).
bench: bench-failover bench-partition bench-agents bench-idle bench-lb bench-pg
	$(VENV)/bin/python -m bench.frames
	$(VENV)/bin/python -m bench.collect

bench-failover: venv
	$(VENV)/bin/python -m bench.failover

bench-partition: venv
	$(VENV)/bin/python -m bench.partition

# The anchors the benchmarks run beside vigil in the same run (bench/anchors.py), and the
# balancer's: HAProxy, nginx-light as the real servers, wrk as the load; Patroni and etcd
# for the replicated database's (bench/pg_cluster.py).
BENCH_DEBS := keepalived haproxy nginx-light wrk patroni etcd-server

bench-deps:
	@tools/debs.sh $(SETUP_LOG) $(BENCH_DEBS)

bench-idle: venv bench-deps
	$(VENV)/bin/python -m bench.idle

# The load balancer: Maglev's disruption, the cost of 200 servers' checks, and throughput
# beside a hand-written nftables ruleset and HAProxy (docs/balancer.md).
bench-lb: venv bench-deps
	$(VENV)/bin/python -m bench.maglev
	$(VENV)/bin/python -m bench.lb_checks
	$(VENV)/bin/python -m bench.lb_throughput

bench-agents: venv
	$(VENV)/bin/python -m bench.agents

# Replicated PostgreSQL: vigil's promotable group beside Patroni 3.0.2 + etcd, per fault
# (bench/pg_failover.py, docs/replication.md): 5 runs of each fault and system, Patroni in
# its tight timings. PG_ARGS replaces those options: make bench-pg PG_ARGS="--runs 1".
PG_ARGS ?= --runs 5 --profile tight
bench-pg: venv bench-deps
	$(VENV)/bin/python -m bench.pg_failover $(PG_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info

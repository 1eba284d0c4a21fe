# vigil: `make demo` and `make test` work from a clean clone on Debian 12, as root.
SHELL := /bin/bash
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
DEBS := python3-venv iproute2 nftables tcpdump procps psmisc util-linux fence-agents socat resource-agents e2fsprogs \
	chromium chromium-driver

.PHONY: all deps venv demo test unit integration bench bench-failover bench-partition \
	bench-agents soak clean

all: venv

# Debian packages the daemon and the tests use; installed only when one is missing.
deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml | deps
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

venv: deps $(STAMP)

demo: venv
	$(VENV)/bin/python -m vigil.lab.demo

test: venv
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests

unit: venv
	$(VENV)/bin/python -m pytest -q tests/unit

integration: venv
	$(VENV)/bin/python -m pytest -q tests/integration

# An hour of random faults on a test cluster (README: "Torture"), then a long fuzz.
soak: venv
	$(VENV)/bin/vigil torture --duration 60m --out torture-soak
	VIGIL_FUZZ_EXAMPLES=50000 $(VENV)/bin/python -m pytest -q -p no:cacheprovider \
	  tests/unit/test_fuzz.py

# The README's figures; each part also runs alone (about 25, 45 and 5 minutes).
bench: bench-failover bench-partition bench-agents
	$(VENV)/bin/python -m bench.frames
	$(VENV)/bin/python -m bench.collect

bench-failover: venv
	$(VENV)/bin/python -m bench.failover

bench-partition: venv
	$(VENV)/bin/python -m bench.partition

bench-agents: venv
	$(VENV)/bin/python -m bench.agents

clean:
	rm -rf $(VENV) build src/*.egg-info

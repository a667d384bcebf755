# overlay.mesh — every command a developer, CI or an ops engineer trying the collection runs.
# Run as root on Debian 12: `make demo` (a 3-host lab with the overlay on it), `make test` (everything).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

REPO := $(CURDIR)
VENV := $(REPO)/.venv
PY := $(VENV)/bin/python
# The collection is used straight from the checkout: .collections/ansible_collections/overlay/mesh
# is a symlink to this directory.
COLLECTIONS := $(REPO)/.collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/overlay/mesh
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_CONFIG := $(REPO)/tests/ansible.cfg
export ANSIBLE_CONNECTION_PLUGINS := $(REPO)/tests/lab/connection_plugins
export PATH := $(VENV)/bin:$(PATH)

LAB ?= demo
HOSTS ?= 3
SEGMENTS ?= 1
UNDERLAY ?= ipv4
IMAGE ?= base
LAB_TOOL := $(PY) $(REPO)/tests/lab/overlay_lab.py
APT_PACKAGES := debootstrap systemd-container iproute2 nftables python3-venv python3-pip git rsync tcpdump iperf3 iputils-ping openssh-client
APT_STAMP := /var/lib/overlay-mesh-apt.stamp

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 22

# ---- dependencies -------------------------------------------------------------------------
# apt runs when the package list changes (the stamp holds the list), not whenever the Makefile does;
# what needs the packages waits for them without being rebuilt when the stamp is rewritten.
.PHONY: apt-packages
apt-packages:
	@if [ "$$(cat $(APT_STAMP) 2>/dev/null)" != "$(APT_PACKAGES)" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root: the lab needs namespaces and systemd-nspawn" >&2; exit 1; fi; \
	  echo "apt-get install $(APT_PACKAGES)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null && \
	  echo "$(APT_PACKAGES)" > $(APT_STAMP); \
	fi

$(VENV)/.stamp: requirements.txt requirements-dev.txt | apt-packages
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# pyroute2 0.7.2 (Debian 12's) beside the controller's 0.9.x: the engine's namespace tests run on both.
VENV072 := $(REPO)/.venv072
export OVERLAY_MESH_PY072 := $(VENV072)/bin/python
$(VENV072)/.stamp: | apt-packages
	python3 -m venv $(VENV072)
	$(VENV072)/bin/python -m pip install -q pyroute2==0.7.2
	touch $@

# ansible-test --venv bootstraps pip with a script from a host outside the registries we reach:
# give it an offline stand-in and pip's wheel from PyPI.
ANSIBLE_TEST_CACHE := $(HOME)/.ansible/test/cache
$(ANSIBLE_TEST_CACHE)/.stamp: $(VENV)/.stamp tests/sanity/get_pip_offline.py
	mkdir -p $(ANSIBLE_TEST_CACHE)
	v=$$(sed -n "s/^ *pip='\([0-9.]*\)',.*/\1/p" $(VENV)/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1); \
	  test -n "$$v" && \
	  $(PY) -m pip download -q --no-deps --only-binary=:all: -d $(ANSIBLE_TEST_CACHE) "pip==$$v" && \
	  cp tests/sanity/get_pip_offline.py $(ANSIBLE_TEST_CACHE)/get_pip_$${v//./_}.py
	touch $@

# etcd for the lease store's tests (Debian's etcd-server, 3.4 on Debian 12): unpacked, not installed, because the
# package's postinst enables and starts a system etcd on port 2379. Tests start their own members (tests/unit/.../etcd_lab.py).
ETCD_DIR := $(REPO)/.build/etcd
export OVERLAY_MESH_ETCD := $(ETCD_DIR)/usr/bin/etcd
$(OVERLAY_MESH_ETCD): | apt-packages
	rm -rf $(ETCD_DIR) $(ETCD_DIR)-deb && mkdir -p $(ETCD_DIR)-deb
	cd $(ETCD_DIR)-deb && apt-get download -qq -o APT::Sandbox::User=root etcd-server
	dpkg-deb -x $(ETCD_DIR)-deb/etcd-server_*.deb $(ETCD_DIR)
	rm -rf $(ETCD_DIR)-deb
	$@ --version | sed -n 1p
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(REPO) $@

.PHONY: deps
deps: apt-packages $(VENV)/.stamp $(VENV072)/.stamp $(OVERLAY_MESH_ETCD) $(COLLECTION_LINK) ## install apt packages, the venv, etcd for tests, and link the collection

# ---- tests --------------------------------------------------------------------------------
.PHONY: test
test: deps ## run every test: unit, lint, sanity, integration, every bench in smoke mode, molecule, root-namespace check
	$(PY) tests/lab/rootns.py snapshot $(REPO)/.build/rootns-before.json
	$(MAKE) --no-print-directory unit lint sanity integration bench-smoke molecule
	$(PY) tests/lab/rootns.py compare $(REPO)/.build/rootns-before.json

.PHONY: unit
unit: deps ## unit tests (no root needed)
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

.PHONY: lint
lint: deps ## ansible-lint, production profile; the changelog fragments
	cd $(COLLECTION_LINK) && ansible-lint --profile production --offline
	antsibull-changelog lint

.PHONY: sanity
sanity: deps $(ANSIBLE_TEST_CACHE)/.stamp ## ansible-test sanity on a copy laid out as ansible_collections/overlay/mesh
	rm -rf $(REPO)/.build/sanity && mkdir -p $(REPO)/.build/sanity/ansible_collections/overlay/mesh
	git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ $(REPO)/.build/sanity/ansible_collections/overlay/mesh/
	cd $(REPO)/.build/sanity/ansible_collections/overlay/mesh && git init -q && git add -A && \
	  ansible-test sanity --venv --python $$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])') --color no

# Each folder is its own pytest run: their test modules import helpers from their own conftest.
INTEGRATION_RUNS := "tests/lab" "tests/integration --ignore=tests/integration/udp" "tests/integration/udp"
.PHONY: integration
integration: deps ## integration tests needing root: the lab itself, throwaway namespaces, lab hosts
	for run in $(INTEGRATION_RUNS); do $(PY) -m pytest -q -p no:cacheprovider $$run; done

.PHONY: molecule
molecule: deps ## every molecule scenario on lab hosts
	cd $(REPO) && molecule test --all

# ---- the lab ------------------------------------------------------------------------------
.PHONY: lab-up
lab-up: deps ## boot a lab: make lab-up LAB=name HOSTS=n [SEGMENTS=k, a routed underlay] [UNDERLAY=ipv6|dual] [IMAGE=runtimes]
	$(LAB_TOOL) up --name $(LAB) --hosts $(HOSTS) --segments $(SEGMENTS) --underlay $(UNDERLAY) --image $(IMAGE)

.PHONY: lab-down
lab-down: deps ## remove a lab: make lab-down LAB=name
	$(LAB_TOOL) down --name $(LAB)

.PHONY: lab-list
lab-list: deps ## list running labs
	$(LAB_TOOL) list

# ---- the demo -----------------------------------------------------------------------------
# Then, in a new shell at the checkout's root, README "Using it" runs as printed: ansible.cfg at
# the root finds the collection and the lab's connection plugin, the activation puts .venv/bin on PATH.
LAB_INVENTORY = $(LAB_ROOT)/$(LAB)/inventory.yml
LAB_ROOT := $(or $(OVERLAY_LAB_ROOT),/var/lib/overlay-mesh-lab)
.PHONY: demo
demo: deps ## boot a lab (LAB=demo, HOSTS=3), run site and verify on it
	$(LAB_TOOL) up --name $(LAB) --hosts $(HOSTS)
	ansible-playbook -i $(LAB_INVENTORY) overlay.mesh.site
	ansible-playbook -i $(LAB_INVENTORY) overlay.mesh.verify
	$(LAB_TOOL) status --name $(LAB)
	@echo "use it (README \"Using it\"), in a new shell:"
	@echo "  cd $(REPO) && . .venv/bin/activate && INVENTORY=$(LAB_INVENTORY)"
	@echo "enter a host:  $(LAB_TOOL) shell --name $(LAB) node1"
	@echo "remove it:     make demo-down$(if $(filter-out demo,$(LAB)), LAB=$(LAB))"

.PHONY: demo-down
demo-down: deps ## remove the demo lab (LAB=demo)
	$(LAB_TOOL) down --name $(LAB)

# ---- benchmarks (figures and ratios against a reference measured in the same run) ----------
# Each bench-<name> runs one bench at full size; `make bench` runs them all and prints one table
# (tests/benchmarks/run_all.py); `make bench-smoke` (part of `make test`) checks that each still runs
# to its summary line at its smallest size, never its figures.  ARGS passes options to one bench.
ARGS ?=
BENCH := $(PY) $(REPO)/tests/benchmarks
.PHONY: bench
bench: deps ## every benchmark at full size, then one table: figure, reference, ratio, target, PASS/MISS, load average
	$(BENCH)/run_all.py

.PHONY: bench-smoke
bench-smoke: deps ## every benchmark at its smallest size: does each still run to its summary line (no figure checked)
	$(PY) -m pytest -q -p no:cacheprovider tests/benchmarks

.PHONY: bench-netlink
bench-netlink: deps ## engine vs iproute2 batch for 1000/5000 peers, in a throwaway namespace
	$(BENCH)/bench_netlink.py $(ARGS)

.PHONY: bench-leases
bench-leases: deps ## lease allocation for 10 000 hosts (lease file), 1 000 hosts in etcd beside the file
	$(BENCH)/bench_leases.py $(ARGS)

.PHONY: bench-dataplane
bench-dataplane: deps ## iperf3 between containers on two lab hosts: vxlan against a fair routed reference (alternated), udp, host-gw, direct, wireguard; IPv6
	$(BENCH)/bench_dataplane.py $(ARGS)

.PHONY: bench-converge
bench-converge: deps ## site vs a hand-written ip/bridge playbook, cold and rerun, on 8- and 16-host labs
	$(BENCH)/bench_converge.py $(ARGS)

.PHONY: bench-agent
bench-agent: deps ## node agent: lease put in etcd -> kernel entries on every lab host (p50/p99), kernel ops per change at 100 and 1000 leases, agent RSS and idle CPU
	$(BENCH)/bench_agent.py $(ARGS)

.PHONY: clean
clean: ## remove build output (not the venv, not the image cache)
	rm -rf $(REPO)/.build

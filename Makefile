# The README's two commands: `make demo` and `make test`. Both set everything up from nothing:
# Debian packages (as root, or through sudo), a virtualenv with the project, the local images.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
APT_PACKAGES := busybox-static stress-ng iptables iproute2 util-linux conntrack podman \
	containernetworking-plugins openssl gcc libc6-dev prometheus
# debootstrap: the fault agent's image is a Debian root filesystem (harness/agent/rootfs.py)
APT_PACKAGES += debootstrap
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# What `make unit` needs from Debian, and no container engine: busybox's httpd (the load tests'
# server), openssl (the Kubernetes lab's certificates), gcc and libc6-dev (its static pause binary).
UNIT_APT_PACKAGES := busybox-static openssl gcc libc6-dev
PYTEST_ARGS ?=

.PHONY: setup engine kube demo test test-slow lint typecheck unit images bench before-after \
	cleanup clean compare-demo

# Installs the Debian packages of $(1) that are missing.
define apt_install
@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "installing Debian packages:$$missing"; \
  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
fi
endef

setup: $(STAMPS)/apt $(STAMPS)/venv $(STAMPS)/locust-examples engine

# Checked on every run (machines start with no engine; a reboot stops the one started here):
# an engine that answers is used as it is; otherwise docker.io is installed and dockerd started.
engine: $(STAMPS)/apt $(STAMPS)/venv
	@$(SUDO) $(BIN)/harness engine up

$(STAMPS)/apt: Makefile
	@mkdir -p $(STAMPS)
	$(call apt_install,$(APT_PACKAGES))
	@touch $@

$(STAMPS)/apt-unit: Makefile
	@mkdir -p $(STAMPS)
	$(call apt_install,$(UNIT_APT_PACKAGES))
	@touch $@

# Locust's own example locustfiles, as Debian packages them (python3-locust's doc/examples),
# unpacked without installing that package: a user's locustfile must run unchanged. Needs only
# apt's package lists (read again when they are missing), so `make unit` has it too.
LOCUST_EXAMPLES := build/locust-examples
LOCUST_DOWNLOAD := apt-get -qq -o APT::Sandbox::User=root download python3-locust
$(STAMPS)/locust-examples: $(STAMPS)/apt-unit
	@rm -rf $(LOCUST_EXAMPLES) && mkdir -p $(LOCUST_EXAMPLES) && tmp=$$(mktemp -d) && \
	( cd $$tmp && { $(LOCUST_DOWNLOAD) || { $(SUDO) apt-get update -qq && $(LOCUST_DOWNLOAD); }; } ) && \
	dpkg-deb -x $$tmp/python3-locust_*.deb $$tmp/x && dpkg-deb -e $$tmp/python3-locust_*.deb $$tmp/control && \
	cp -r $$tmp/x/usr/share/doc/python3-locust/examples/. $(LOCUST_EXAMPLES)/ && \
	cp $$tmp/control/md5sums $(LOCUST_EXAMPLES)/DEBIAN.md5sums && rm -rf $$tmp
	@touch $@

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# Kubernetes v1.34.12 built from its own Go module, cached in ~/.cache/chaos-harness/kubernetes
# (about 7 minutes the first time on 2 cores, about a second once cached). Its nodes run
# containerd + runc: Debian's docker.io brings them; installed here only when absent, so a
# user's own containerd (containerd.io) is never replaced.
kube: setup
	@command -v containerd >/dev/null && command -v runc >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq containerd runc
	$(BIN)/harness lab build --kind kubernetes

images: setup
	$(BIN)/harness build-images

demo: setup images
	$(BIN)/harness run scenarios/quickstart.yaml

# The layers (.importlinter): the command line over campaigns and the runner, over targets, faults,
# load and the analysis, over results, units and errors; an import upward fails the lint.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: setup
	$(BIN)/mypy

# The tests that need no container engine: installs none and starts none (no `setup`).
unit: $(STAMPS)/apt-unit $(STAMPS)/venv $(STAMPS)/locust-examples
	$(BIN)/pytest -m "not docker" $(PYTEST_ARGS)

test: setup images kube lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# The tests marked slow, which `make test` (and so CI) skips: minutes each. Run them before
# calling an issue resolved.
test-slow: setup images kube
	$(BIN)/pytest --run-slow -m slow $(PYTEST_ARGS)

bench: setup images
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.accuracy
	$(BIN)/python -m bench.analysis_scale

# The before/after example pair (Swarm's restart delay 5 s vs 1 s), 5 runs each: ~8 minutes.
before-after: setup images
	$(BIN)/python -m bench.before_after

cleanup: setup
	$(BIN)/harness cleanup

clean:
	rm -rf $(VENV) $(STAMPS) build *.egg-info

# The orchestrator comparison: the same crash on Docker, Podman, a single-node Swarm and a
# one-node Kubernetes lab (brought up for the demo when none is up, and taken down after).
KUBE_UP = $(BIN)/python -c "import sys; from harness.labs.kubernetes.lab import current; sys.exit(current() is None)"
compare-demo: setup images kube
	@own_lab=0; $(KUBE_UP) || { $(BIN)/harness lab up --kind kubernetes --nodes 1 >/dev/null && own_lab=1; }; \
	d=$$($(BIN)/harness run scenarios/compare-docker-swarm.yaml | tail -1) && \
	p=$$($(BIN)/harness run scenarios/compare-docker-swarm.yaml --target podman | tail -1) && \
	s=$$($(BIN)/harness run scenarios/compare-docker-swarm.yaml --target swarm | tail -1) && \
	k=$$($(BIN)/harness run scenarios/compare-docker-swarm.yaml --target kubernetes | tail -1); \
	rc=$$?; [ $$own_lab = 1 ] && $(BIN)/harness lab down --kind kubernetes >/dev/null; \
	[ $$rc = 0 ] || exit $$rc; \
	$(BIN)/harness compare "$$d" "$$p" "$$s" "$$k" --by target

# smartos.images: `make demo` runs the main job on a local pool and image server; `make test` runs
# every test. Both install what they need first (as root on Debian 12).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD ?= $(CURDIR)/build
COLLECTION := $(BUILD)/ansible_collections/smartos/images
# The controller Python runs every sanity test; modules are also compiled and imported on the
# target Pythons found under pyenv (whose shims refuse to run from ansible-test, hence the links).
SANITY_PYTHONS ?= 3.11
TARGET_PYTHONS ?= 3.8 3.9 3.10 3.12 3.13
PYENV_VERSIONS ?= $(HOME)/.pyenv/versions
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)
export ANSIBLE_FORCE_COLOR := 0

.PHONY: demo test deps system-deps venv collection sanity units fuzz lint docs changelog galaxy integration guest integration-guest bench clean

demo: deps collection
	$(PY) -m tools.demo

test: deps collection sanity units lint docs changelog galaxy integration integration-guest

deps: system-deps venv

system-deps:
	@need=""; \
	for pkg in zfs-fuse:/usr/sbin/zfs-fuse shellcheck:/usr/bin/shellcheck openssl:/usr/bin/openssl gzip:/bin/gzip bzip2:/bin/bzip2 xz-utils:/usr/bin/xz curl:/usr/bin/curl \
	    openssh-server:/usr/sbin/sshd debootstrap:/usr/sbin/debootstrap qemu-system-x86:/usr/bin/qemu-system-x86_64 \
	    qemu-utils:/usr/bin/qemu-img zstd:/usr/bin/zstd chromium:/usr/bin/chromium; do \
	  [ -x "$${pkg#*:}" ] || need="$$need $${pkg%%:*}"; \
	done; \
	if [ -n "$$need" ]; then \
	  echo "installing:$$need"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# ansible-test runs only from .../ansible_collections/<namespace>/<name>/: lay out a copy there
# of the files git tracks or would track (a symlink is not enough).
collection:
	@rm -rf $(COLLECTION) && mkdir -p $(COLLECTION)
	@git ls-files -z --cached --others --exclude-standard | \
	  tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C $(COLLECTION)
	@git -C $(COLLECTION) init -q  # ansible-test lists a collection's files with git: give it its own repo

sanity: deps collection
	bash tests/ci/prepare-ansible-test.sh $(CURDIR)/$(PY)
	cd $(COLLECTION) && $(CURDIR)/$(VENV)/bin/ansible-test sanity --venv --color no $(addprefix --python ,$(SANITY_PYTHONS))
	@mkdir -p $(BUILD)/pythons && for v in $(TARGET_PYTHONS); do \
	  p=$$(ls -d $(PYENV_VERSIONS)/$$v.*/bin/python$$v 2>/dev/null | tail -n 1); \
	  if [ -z "$$p" ]; then echo "python$$v not installed: compile/import sanity on it skipped"; continue; fi; \
	  ln -sf "$$p" $(BUILD)/pythons/python$$v; \
	  (cd $(COLLECTION) && PATH=$(BUILD)/pythons:$$PATH $(CURDIR)/$(VENV)/bin/ansible-test sanity --venv --color no \
	    --test compile --test import --python $$v) || exit 1; \
	done

units: deps collection
	bash tests/ci/prepare-ansible-test.sh $(CURDIR)/$(PY)
	cd $(COLLECTION) && $(CURDIR)/$(VENV)/bin/ansible-test units --venv --color no --python 3.11

# The property tests of tests/unit/property with the fuzz profile: FUZZ_EXAMPLES random inputs per target (make
# units runs them with a fixed seed and a few hundred), and each target's example count. Plain pytest on the
# laid-out copy, as ansible-test units does not pass the profile's environment variables on. Bounded twice:
# hypothesis stops after FUZZ_EXAMPLES, and timeout stops the whole run after FUZZ_TIMEOUT seconds.
FUZZ_EXAMPLES ?= 10000
FUZZ_TIMEOUT ?= 5400
FUZZ_TESTS ?= tests/unit/property
fuzz: deps collection
	cd $(COLLECTION) && SMARTOS_IMAGES_FUZZ=1 SMARTOS_IMAGES_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PYTHONPATH=$(BUILD) \
	  timeout --signal=INT --kill-after=30 $(FUZZ_TIMEOUT) $(CURDIR)/$(PY) -m pytest -p no:cacheprovider -q \
	  --hypothesis-show-statistics $(FUZZ_TESTS)

# ansible-lint's production profile on the role and playbooks, from the laid-out copy so that
# smartos.images.* names resolve.
lint: deps collection
	cd $(COLLECTION) && $(CURDIR)/$(VENV)/bin/ansible-lint --offline --profile production roles playbooks

# The docs tools (antsibull-docs, antsibull-changelog, Sphinx and the ansible-core they run), pinned in
# tests/docs/requirements.txt, in their own venv under $(BUILD), out of the collection's tarball.
DOCS_VENV ?= $(BUILD)/venv-docs
CHANGELOG_VERSION ?= $(shell sed -n "s/^version: *['\"]\{0,1\}\([^'\" ]*\).*/\1/p" galaxy.yml)

$(DOCS_VENV)/.installed: tests/docs/requirements.txt
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install -q --disable-pip-version-check -r tests/docs/requirements.txt
	touch $@

# docs: antsibull-docs lint-collection-docs --plugin-docs on the laid-out copy, then the docsite (sphinx-init,
# then its build.sh) in $(BUILD)/docsite, offline (network cut off where the kernel allows; no intersphinx
# download) and failing on any Sphinx warning or on a module, plugin, role or guide without its page.
# Open $(BUILD)/docsite/build/html/index.html.
docs: collection $(DOCS_VENV)/.installed
	bash tests/docs/docsite.sh $(DOCS_VENV)/bin $(BUILD) $(BUILD)/docsite

# changelog: antsibull-changelog lint, then a dry release of CHANGELOG_VERSION (galaxy.yml's) in a scratch
# copy, $(BUILD)/changelog, never in the tree; fails unless the notes are valid RST that list each new
# module, plugin and role once and no fragment announces one again. Read $(BUILD)/changelog/.../CHANGELOG.rst.
changelog: collection $(DOCS_VENV)/.installed
	bash tests/docs/changelog.sh $(DOCS_VENV)/bin $(COLLECTION) $(BUILD)/changelog $(CHANGELOG_VERSION)

# The collection as Galaxy takes it: ansible-galaxy builds the tarball from the laid-out copy (so that
# build_ignore also meets what sanity, units and lint leave there) into $(BUILD)/galaxy, then Galaxy's
# importer checks it offline with tests/galaxy/galaxy-importer.cfg (metadata, files, ansible-doc,
# changelog, ansible-lint's production profile; ansible-test is `make sanity`'s). check_release.py
# fails on any importer warning or error and on a tarball holding what users do not need.
GALAXY_VENV := .venv-galaxy
GALAXY_OUT := $(BUILD)/galaxy
galaxy: deps collection $(GALAXY_VENV)/.installed
	@rm -rf $(GALAXY_OUT) && mkdir -p $(GALAXY_OUT)
	cd $(COLLECTION) && $(CURDIR)/$(VENV)/bin/ansible-galaxy collection build --output-path $(GALAXY_OUT)
	set -o pipefail; cd $(GALAXY_OUT) && env -u ANSIBLE_COLLECTIONS_PATH PATH=$(CURDIR)/$(GALAXY_VENV)/bin:$$PATH \
	  GALAXY_IMPORTER_CONFIG=$(CURDIR)/tests/galaxy/galaxy-importer.cfg \
	  $(CURDIR)/$(GALAXY_VENV)/bin/python -m galaxy_importer.main smartos-images-*.tar.gz 2>&1 | tee importer.log
	$(GALAXY_VENV)/bin/python tests/galaxy/check_release.py $(GALAXY_OUT)/smartos-images-*.tar.gz $(GALAXY_OUT)/importer.log

$(GALAXY_VENV)/.installed: tests/galaxy/requirements.txt
	$(PYTHON) -m venv $(GALAXY_VENV)
	$(GALAXY_VENV)/bin/python -m pip install -q --disable-pip-version-check -r tests/galaxy/requirements.txt
	touch $@

integration: deps collection
	$(PY) -m pytest -p no:cacheprovider tests/integration -q

# The kernel-ZFS guest (Debian bookworm with OpenZFS from bookworm-backports, built from Debian's packages
# and cached under /var/cache/smartos-images-guest; a warm cache is reused), and the lane that runs the
# modules on it over SSH: zvols, VM disks, kill -9 mid-receive. See docs/test-environment.md.
GUEST_BUILD_TIMEOUT ?= 3600
guest: system-deps
	timeout --kill-after=60 $(GUEST_BUILD_TIMEOUT) bash tests/guest/build.sh

integration-guest: deps collection guest
	$(PY) -m pytest -p no:cacheprovider tests/guest -q

bench: deps collection
	$(PY) -m benchmarks.import_speed

clean:
	rm -rf build tests/output

# smartos.images: `make demo` runs the main job on a local pool and image server; `make test` runs
# every test. Both install what they need first (as root on Debian 12).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD ?= $(CURDIR)/build
# make cannot quote a path with a space: `rm -rf $(COLLECTION)` would remove the part before the space.
ifneq ($(words $(CURDIR)),1)
$(error the checkout's path "$(CURDIR)" has a space, which make cannot handle: clone it to a path without one)
endif
ifneq ($(words $(BUILD)),1)
$(error BUILD="$(BUILD)" is not one path without spaces: make cannot quote it (give, say, BUILD=/var/tmp/smartos-build))
endif
COLLECTION := $(BUILD)/ansible_collections/smartos/images
# ansible-core versions `make test` covers (meta/runtime.yml promises >=2.19.0), each in its own venv with a
# controller Python it supports: 2.19 in .venv (requirements-dev.txt, all `make demo` needs), the others in
# .venv-<core> (tests/requirements/core-<core>.txt), made with pyenv's Python. Sanity and units run on every
# core; the zfs-fuse integration suite on the oldest and the newest; the guest lane and ansible-lint on the
# newest. A core's controller Python or one of its target Pythons that is missing fails the run.
CORES ?= 2.19 2.20 2.21
BASE_CORE := 2.19
INTEGRATION_CORES ?= 2.19 2.21
# The integration core that also runs the tests marked one_core (tests/integration/conftest.py ONE_CORE_RE): the
# hostile matrices (test_attack_*, test_safety_*, test_mirror_nginx), which test the modules' own code, the same
# whichever core runs them, and take half the suite's time. The other core runs every module's functional tests.
MATRIX_CORE ?= 2.21
GUEST_CORE ?= 2.21
LINT_CORE ?= 2.21
# Every core some step runs on (`make test CORES=2.19` still runs integration, the guest lane and ansible-lint as set).
ALL_CORES = $(sort $(CORES) $(INTEGRATION_CORES) $(GUEST_CORE) $(LINT_CORE))
# The controller Python of each core (every sanity test runs on it, units too), and the target Pythons the
# modules are also compiled and imported on: every one the core supports for modules (3.8 or 3.9 up to its
# newest) except 3.14, which pyenv here lacks. pyenv's shims refuse to run from ansible-test, hence the links.
CONTROLLER_2.19 := 3.11
CONTROLLER_2.20 := 3.12
CONTROLLER_2.21 := 3.13
TARGETS_2.19 ?= 3.8 3.9 3.10 3.12 3.13
TARGETS_2.20 ?= 3.9 3.10 3.11 3.13
TARGETS_2.21 ?= 3.9 3.10 3.11 3.12
PYENV_VERSIONS ?= $(HOME)/.pyenv/versions
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)
export ANSIBLE_FORCE_COLOR := 0
# The venv of core $(1), and the newest pyenv build of Python $(1) (or nothing).
core_venv = $(if $(filter $(BASE_CORE),$(1)),$(VENV),$(VENV)-$(1))
pyenv_python = $(lastword $(sort $(wildcard $(PYENV_VERSIONS)/$(1).*/bin/python$(1))))
$(foreach c,$(ALL_CORES),$(if $(CONTROLLER_$(c)),,$(error ansible-core $(c) has no controller Python (CONTROLLER_$(c)))) \
  $(if $(or $(filter $(BASE_CORE),$(c)),$(wildcard tests/requirements/core-$(c).txt)),,$(error ansible-core $(c) has no tests/requirements/core-$(c).txt)))
.SECONDEXPANSION:

.PHONY: demo test test-steps test-guest-build deps system-deps venv venvs collection sanity units fuzz lint docs changelog galaxy integration guest integration-guest bench clean \
  $(addprefix venv-,$(ALL_CORES)) $(addprefix sanity-,$(ALL_CORES)) $(addprefix units-,$(ALL_CORES)) $(addprefix integration-,$(ALL_CORES))

demo: deps collection
	$(PY) -m tools.demo

# The guest build (downloads, unpacking, one DKMS compile: 7 to 25 minutes) runs beside the other steps, its
# output kept in $(BUILD)/guest-build.log and printed when it ends; the guest lane runs last, once both are done.
# The steps themselves run one at a time (-j1), as `make sanity units ...` would.
test: deps
	$(MAKE) --no-print-directory -j2 -o system-deps test-guest-build test-steps
	$(MAKE) --no-print-directory -o system-deps -o guest integration-guest

test-steps: deps
	$(MAKE) --no-print-directory -j1 -o system-deps venvs collection sanity units lint docs changelog galaxy integration

test-guest-build: system-deps
	@mkdir -p $(BUILD)
	@echo "== the kernel-ZFS guest: building beside the other steps (log: $(BUILD)/guest-build.log)"
	@rc=0; $(MAKE) --no-print-directory -o system-deps guest > $(BUILD)/guest-build.log 2>&1 || rc=$$?; \
	  echo "== the kernel-ZFS guest: build ended ($$rc)"; cat $(BUILD)/guest-build.log; exit $$rc

deps: system-deps venv

system-deps:
	@need=""; \
	for pkg in zfs-fuse:/usr/sbin/zfs-fuse shellcheck:/usr/bin/shellcheck openssl:/usr/bin/openssl gzip:/bin/gzip bzip2:/bin/bzip2 xz-utils:/usr/bin/xz curl:/usr/bin/curl \
	    openssh-server:/usr/sbin/sshd debootstrap:/usr/sbin/debootstrap qemu-system-x86:/usr/bin/qemu-system-x86_64 \
	    qemu-utils:/usr/bin/qemu-img zstd:/usr/bin/zstd chromium:/usr/bin/chromium nginx:/usr/sbin/nginx; do \
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

# Every core's venv (make test); make demo needs .venv only.
venvs: $(addprefix venv-,$(ALL_CORES))

$(addprefix venv-,$(ALL_CORES)): venv-%: $$(call core_venv,%)/.installed

$(VENV)-%/.installed: requirements.txt tests/requirements/core-%.txt
	@p="$(call pyenv_python,$(CONTROLLER_$*))"; \
	if [ -z "$$p" ]; then echo "ansible-core $*: its controller Python $(CONTROLLER_$*) is not installed under $(PYENV_VERSIONS)" >&2; exit 1; fi; \
	echo "== ansible-core $*: $(VENV)-$* with $$p"; \
	rm -rf $(VENV)-$* && "$$p" -m venv $(VENV)-$* && \
	$(VENV)-$*/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements/core-$*.txt
	touch $@

# ansible-test runs only from .../ansible_collections/<namespace>/<name>/: lay out a copy there
# of the files git tracks or would track (a symlink is not enough).
collection:
	@rm -rf $(COLLECTION) && mkdir -p $(COLLECTION)
	@git ls-files -z --cached --others --exclude-standard | \
	  tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C $(COLLECTION)
	@git -C $(COLLECTION) init -q  # ansible-test lists a collection's files with git: give it its own repo

# Full sanity on the core's controller Python, then compile and import on each of its target Pythons.
sanity: $(addprefix sanity-,$(CORES))

$(addprefix sanity-,$(ALL_CORES)): sanity-%: venv-% collection
	@echo "== ansible-core $*: sanity on Python $(CONTROLLER_$*), compile and import on $(TARGETS_$*)"
	@mkdir -p $(BUILD)/pythons && for v in $(TARGETS_$*); do \
	  p=$$(ls -d $(PYENV_VERSIONS)/$$v.*/bin/python$$v 2>/dev/null | tail -n 1); \
	  if [ -z "$$p" ]; then echo "ansible-core $*: target Python $$v is not installed under $(PYENV_VERSIONS)" >&2; exit 1; fi; \
	  ln -sf "$$p" $(BUILD)/pythons/python$$v; \
	done
	bash tests/ci/prepare-ansible-test.sh $(abspath $(call core_venv,$*))/bin/python
	cd $(COLLECTION) && $(abspath $(call core_venv,$*))/bin/ansible-test sanity --venv --color no --python $(CONTROLLER_$*)
	@for v in $(TARGETS_$*); do \
	  echo "== ansible-core $*: compile and import on Python $$v"; \
	  (cd $(COLLECTION) && PATH=$(BUILD)/pythons:$$PATH $(abspath $(call core_venv,$*))/bin/ansible-test sanity --venv --color no \
	    --test compile --test import --python $$v) || exit 1; \
	done

units: $(addprefix units-,$(CORES))

$(addprefix units-,$(ALL_CORES)): units-%: venv-% collection
	@echo "== ansible-core $*: units on Python $(CONTROLLER_$*)"
	bash tests/ci/prepare-ansible-test.sh $(abspath $(call core_venv,$*))/bin/python
	cd $(COLLECTION) && $(abspath $(call core_venv,$*))/bin/ansible-test units --venv --color no --python $(CONTROLLER_$*)

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
lint: venv-$(LINT_CORE) collection
	@echo "== ansible-core $(LINT_CORE): ansible-lint"
	cd $(COLLECTION) && PATH=$(abspath $(call core_venv,$(LINT_CORE)))/bin:$$PATH \
	  $(abspath $(call core_venv,$(LINT_CORE)))/bin/ansible-lint --offline --profile production roles playbooks

# The release tools, each pinned in tests/<tool>/requirements.txt and kept in its own venv .venv-<tool> beside the
# collection's (out of its tarball): docs (antsibull-docs, antsibull-changelog, Sphinx and the ansible-core they
# run) and galaxy (Galaxy's importer).
DOCS_VENV := .venv-docs
GALAXY_VENV := .venv-galaxy
TOOL_VENVS := $(DOCS_VENV) $(GALAXY_VENV)
CHANGELOG_VERSION ?= $(shell sed -n "s/^version: *['\"]\{0,1\}\([^'\" ]*\).*/\1/p" galaxy.yml)

$(addsuffix /.installed,$(TOOL_VENVS)): .venv-%/.installed: tests/%/requirements.txt
	rm -rf .venv-$* && $(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --disable-pip-version-check -r $<
	touch $@

# docs: antsibull-docs lint-collection-docs --plugin-docs on the laid-out copy, then the docsite (sphinx-init,
# then its build.sh) in $(BUILD)/docsite, offline (network cut off where the kernel allows; no intersphinx
# download) and failing on any Sphinx warning or on a module, plugin, role or guide without its page.
# Open $(BUILD)/docsite/build/html/index.html.
docs: collection $(DOCS_VENV)/.installed
	bash tests/docs/docsite.sh $(abspath $(DOCS_VENV))/bin $(BUILD) $(BUILD)/docsite

# changelog: antsibull-changelog lint, then a dry release of CHANGELOG_VERSION (galaxy.yml's) in a scratch
# copy, $(BUILD)/changelog, never in the tree; fails unless the notes are valid RST that list each new
# module, plugin and role once, no fragment announces one again or cites an internal issue, and the first
# release holds no fixes (a fix to unreleased behaviour is trivial). Read $(BUILD)/changelog/.../CHANGELOG.rst.
changelog: collection $(DOCS_VENV)/.installed
	bash tests/docs/changelog.sh $(abspath $(DOCS_VENV))/bin $(COLLECTION) $(BUILD)/changelog $(CHANGELOG_VERSION)

# The collection as Galaxy takes it: ansible-galaxy builds the tarball from the laid-out copy (so that
# build_ignore also meets what sanity, units and lint leave there) into $(BUILD)/galaxy, then Galaxy's
# importer checks it offline with tests/galaxy/galaxy-importer.cfg (metadata, files, ansible-doc,
# changelog, ansible-lint's production profile; ansible-test is `make sanity`'s). check_release.py
# fails on any importer warning or error and on a tarball holding what users do not need.
GALAXY_OUT := $(BUILD)/galaxy
galaxy: deps collection $(GALAXY_VENV)/.installed
	@rm -rf $(GALAXY_OUT) && mkdir -p $(GALAXY_OUT)
	cd $(COLLECTION) && $(abspath $(VENV))/bin/ansible-galaxy collection build --output-path $(GALAXY_OUT)
	set -o pipefail; cd $(GALAXY_OUT) && env -u ANSIBLE_COLLECTIONS_PATH PATH=$(CURDIR)/$(GALAXY_VENV)/bin:$$PATH \
	  GALAXY_IMPORTER_CONFIG=$(CURDIR)/tests/galaxy/galaxy-importer.cfg \
	  $(CURDIR)/$(GALAXY_VENV)/bin/python -m galaxy_importer.main smartos-images-*.tar.gz 2>&1 | tee importer.log
	$(GALAXY_VENV)/bin/python tests/galaxy/check_release.py $(GALAXY_OUT)/smartos-images-*.tar.gz $(GALAXY_OUT)/importer.log


# The zfs-fuse suite with the core's ansible-playbook (pytest runs from the core's venv), on pools named after the
# core (sitest219, sitest221, ... or SMARTOS_IMAGES_TEST_POOL with the core's digits), so that the runs of two
# cores can share zfs-fuse: INTEGRATION_JOBS=2 runs them side by side, each one's output kept together.
INTEGRATION_JOBS ?= 1
integration: system-deps $(addprefix venv-,$(INTEGRATION_CORES)) collection
	$(MAKE) --no-print-directory -j$(INTEGRATION_JOBS) --output-sync=target -o collection -o system-deps \
	  $(addprefix integration-,$(INTEGRATION_CORES))

$(addprefix integration-,$(ALL_CORES)): integration-%: system-deps venv-% collection
	@echo "== ansible-core $*: integration (zfs-fuse)"
	SMARTOS_IMAGES_TEST_POOL=$${SMARTOS_IMAGES_TEST_POOL:-sitest}$(subst .,,$*) \
	  $(call core_venv,$*)/bin/python -m pytest -p no:cacheprovider tests/integration -q \
	  $(if $(filter $*,$(MATRIX_CORE)),,-m 'not one_core')

# The kernel-ZFS guest (Debian bookworm with OpenZFS from bookworm-backports, built from Debian's packages
# and cached under /var/cache/smartos-images-guest; a warm cache is reused), and the lane that runs the
# modules on it over SSH: zvols, VM disks, kill -9 mid-receive. See docs/test-environment.md.
GUEST_BUILD_TIMEOUT ?= 3600
guest: system-deps
	timeout --kill-after=60 $(GUEST_BUILD_TIMEOUT) bash tests/guest/build.sh

integration-guest: system-deps venv-$(GUEST_CORE) collection guest
	@echo "== ansible-core $(GUEST_CORE): integration-guest (kernel ZFS)"
	$(call core_venv,$(GUEST_CORE))/bin/python -m pytest -p no:cacheprovider tests/guest -q

bench: deps collection
	$(PY) -m benchmarks.import_speed

clean:
	rm -rf build tests/output

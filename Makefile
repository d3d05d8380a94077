# kcm: out-of-tree AF_KCM module, its selftests and samples.
#
#   make                  build our kcm.ko for every installed 6.1 and 6.12 kernel
#   make tests            build the selftests into build/tests/
#   make samples          build samples/kcm/*.c (static) into build/samples/
#   make check            install deps, build everything, run the suite in VMs
#   make run              boot 6.12 with our module and run build/samples/kcm_demo
#   make clean
#
# Variables:
#   KERNELS=6.12          kernel series to use (default: 6.1 and 6.12; run: 6.12)
#   KCM=ours|linux        lane(s) for check: our module, Linux's kcm.ko (default both)
#   DEMO=name             sample that `make run` runs (default kcm_demo)
#   VM_JOBS=N             VMs booted in parallel by check (default 1)
#   VM_TIMEOUT, TEST_TIMEOUT  seconds per VM (900) and per test binary (600)

KCM ?= ours linux
KERNELS ?=
DEMO ?= kcm_demo
export KCM KERNELS VM_JOBS VM_TIMEOUT TEST_TIMEOUT

# Evaluated when used, so that `make check` sees kernels install-deps added.
KVERS = $(shell scripts/kernels.sh $(KERNELS))
MODULES = $(foreach k,$(KVERS),build/$(k)/kcm.ko)
# Directories too, so that deleting or adding a file also rebuilds.
MODULE_SRCS := $(shell find net/kcm include 2>/dev/null)

SAMPLE_SRCS := $(wildcard samples/kcm/*.c)
SAMPLES := $(SAMPLE_SRCS:samples/kcm/%.c=build/samples/%)
UAPI_HDRS := $(shell find include/uapi -name '*.h' 2>/dev/null)
SAMPLE_CFLAGS := -static -O2 -Wall -Wextra -Werror -I include/uapi -I include

TESTS_DIR := tools/testing/selftests/net/kcm

.PHONY: all modules tests samples check run clean
.DEFAULT_GOAL := all

all: modules

modules:
	@if [ -z "$(KVERS)" ]; then \
		echo "no 6.1/6.12 kernel with headers found; run scripts/install-deps.sh" >&2; \
		exit 1; fi
	@$(MAKE) --no-print-directory $(MODULES)

# build-module.sh copies the sources and runs kbuild; rebuild when any
# source or header changes.
build/%/kcm.ko: $(MODULE_SRCS) scripts/build-module.sh
	@scripts/build-module.sh $*

tests:
	@mkdir -p build/tests
	@if [ -f $(TESTS_DIR)/Makefile ]; then \
		$(MAKE) -C $(TESTS_DIR) OUTPUT=$(CURDIR)/build/tests; \
	else \
		echo "tests: $(TESTS_DIR)/Makefile missing, no tests built"; fi

samples: $(SAMPLES)

build/samples/%: samples/kcm/%.c $(UAPI_HDRS)
	@mkdir -p $(@D)
	$(CC) $(SAMPLE_CFLAGS) -o $@ $<

# Our module is built only when the ours lane runs: KCM=linux needs none.
# build/tests/ starts empty so that a deleted test cannot linger there.
check:
	@scripts/install-deps.sh
	@rm -rf build/tests
	@$(MAKE) --no-print-directory $(if $(filter ours,$(KCM)),modules) tests samples
	@scripts/vm/check.sh

run: KERNELS = 6.12
run:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory $(if $(filter ours,$(KCM)),modules) samples
	@kver=$$(scripts/kernels.sh $(KERNELS) | tail -n1); \
	lane=$(if $(filter ours,$(KCM)),ours,linux); \
	echo "run: $(DEMO) on $$kver ($$lane), kernel log in build/vm/$$kver-$$lane-run/console.log"; \
	scripts/vm/run-vm.sh run $$kver $$lane $(DEMO)

clean:
	@if [ -f $(TESTS_DIR)/Makefile ]; then \
		$(MAKE) -C $(TESTS_DIR) OUTPUT=$(CURDIR)/build/tests clean >/dev/null 2>&1 || true; fi
	rm -rf build

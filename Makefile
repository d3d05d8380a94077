# kcm: out-of-tree AF_KCM module, its selftests and samples.
#
#   make                  build our kcm.ko for every installed 6.1 and 6.12 kernel
#   make tests            build the selftests into build/tests/
#   make samples          build samples/kcm/*.c (static) into build/samples/
#   make lib              build tools/lib/kcm into build/lib/libkcm.a
#   make kcmstat          build tools/kcmstat into build/samples/kcmstat
#   make libkcm-pc        build/lib/libkcm.pc for PREFIX (/usr/local), LIBDIR
#                         ($PREFIX/lib), INCLUDEDIR ($PREFIX/include/kcm)
#   make man              man/*.[378] with the version into build/man/
#   make version          print the version (dkms.conf's PACKAGE_VERSION)
#   make deb              Debian packages kcm-dkms and kcm-tools in build/deb/
#                         (scripts/deb/build.sh; installs debhelper and dh-dkms
#                         for the build if missing, and removes them after)
#   make check            install deps, build everything, run the suite in VMs
#   make run              boot 6.12 with our module and run build/samples/kcm_demo
#   make bench            benchmark our kcm.ko, Linux's and user-space framing
#                         in VMs (6.12); table and plot in build/bench/; fails
#                         if our module or a baseline stalled or lost/damaged
#                         messages, or a VM logged a kernel report
#   make bench-selftest   on the host: kcm_bench's data check catches an
#                         injected corruption, loss, duplicate and stall
#                         (about 10 s; part of make check)
#   make check-dkms       README's "With DKMS, from the tree" run on this
#                         host: dkms install for 6.12 from a copy of the
#                         tree, the module where modinfo -k finds it, dkms
#                         remove; the host left as it was (1-2 min;
#                         part of a make check without TESTS)
#   make check-deb        make deb, then README's install section run on this
#                         host: the packages installed with dpkg -i, checked,
#                         purged; the host left as it was (2-3 min; part of
#                         make check without TESTS)
#   make check-man        the man pages formatted without a warning, their
#                         example programs compiled (2 s; part of make check)
#   make check-autoload   boot with ours installed as DKMS does: the first
#                         socket(AF_KCM) loads ours; ours removed, Linux's
#                         (about 1 min; part of a make check without TESTS)
#   make soak             kcm_soak's long form on our module: every kernel,
#                         plain TCG and QEMU -icount (scripts/vm/soak.sh)
#   make check-debug      the suite on a debug kernel (KASAN, lockdep, kmemleak,
#                         ...) built from linux-source-6.12; our module only
#   make check-kcsan      the suite, a longer soak and the fuzzer on a KCSAN
#                         kernel built from linux-source-6.12; fails on a data
#                         race in net/kcm (scripts/debug-kernel/check.sh)
#   make fuzz             kcm_fuzz on the debug kernel for DURATION seconds
#   make intree-patch     build/intree/kcm-intree.patch against linux-source-6.12
#   make check-intree     apply it to a fresh tree, build AF_KCM=y, run the
#                         kselftests in QEMU (scripts/intree/)
#   make clean
#
# Variables:
#   KERNELS=6.12          kernel series to use (default: 6.1 and 6.12; run: 6.12)
#   KCM=ours|linux        lane(s) for check: our module, Linux's kcm.ko (default both)
#   DEMO=name             sample that `make run` runs (default kcm_demo)
#   VM_JOBS=N             VMs booted in parallel by check (default 1)
#   VM_TIMEOUT, TEST_TIMEOUT  seconds per VM (900) and per test binary (600)
#                         (check-debug: 5400 and 1800)
#   TESTS="kcm_basic kcm_rx"  run only these test binaries (check)
#   DURATION=600          fuzz: seconds, split among FUZZ_SEEDS="s1 s2 ..."
#                         (default 4 seeds from the clock); KCM=linux fuzzes
#                         Linux's kcm.ko instead (check-debug too);
#                         FUZZ_ENV="KCM_FUZZ_DONTWAIT=1" etc.: kcm_fuzz's env
#   FUZZ_FAILSLAB=both    fuzz: slab allocations fail at random (failslab), in
#                         the fuzzer's system calls (task), from our module's
#                         code in any context (module), or each seed in both
#                         modes (all: and once without); FUZZ_FAILSLAB_PERCENT
#                         (5), FUZZ_FAILSLAB_STACKS=1 (count the allocation
#                         sites); see scripts/debug-kernel/check.sh
#   KCSAN_SOAK_SECONDS=120, KCSAN_FUZZ_SECONDS=90  check-kcsan: after the
#                         suite, kcm_soak's long form and kcm_fuzz this long
#   CHECK_FAILSLAB_SECONDS=45  check-debug: after the suite, kcm_fuzz with
#                         failslab this long per mode (0: skip)
#   BENCH_ICOUNT=1        bench: QEMU -icount shift=0,sleep=off (see scripts/bench/)
#   SOAK_SECS=600         soak: guest seconds per VM; SOAK_MODES="tcg icount",
#                         SOAK_SEED, SOAK_RUN_MS, SOAK_MATRIX, SOAK_ICOUNT...
#                         (see scripts/vm/soak.sh)

KCM ?= ours linux
KERNELS ?=
DEMO ?= kcm_demo
DURATION ?= 600
export KCM KERNELS VM_JOBS VM_TIMEOUT TEST_TIMEOUT TESTS FUZZ_SEEDS FUZZ_ENV
export FUZZ_FAILSLAB FUZZ_FAILSLAB_PERCENT FUZZ_FAILSLAB_STACKS CHECK_FAILSLAB_SECONDS
export KCSAN_SOAK_SECONDS KCSAN_FUZZ_SECONDS
export SOAK_SECS SOAK_MODES SOAK_SEED SOAK_RUN_MS SOAK_MATRIX SOAK_ICOUNT SOAK_ICOUNT_CPU SOAK_ICOUNT_SMP

# The project's version, in one place: dkms.conf's PACKAGE_VERSION.  The
# module (net/kcm/Makefile), kcmstat --version, libkcm.pc, the man pages and
# the Debian packages take it from there.
KCM_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"$$/\1/p' dkms.conf)

# Evaluated when used, so that `make check` sees kernels install-deps added.
KVERS = $(shell scripts/kernels.sh $(KERNELS))
MODULES = $(foreach k,$(KVERS),build/$(k)/kcm.ko)
# Directories too, so that deleting or adding a file also rebuilds.
MODULE_SRCS := $(shell find net/kcm include 2>/dev/null) dkms.conf

SAMPLE_SRCS := $(wildcard samples/kcm/*.c)
SAMPLES := $(SAMPLE_SRCS:samples/kcm/%.c=build/samples/%)
UAPI_HDRS := $(shell find include/uapi -name '*.h' 2>/dev/null)
SAMPLE_CFLAGS := -static -O2 -Wall -Wextra -Werror -I include/uapi -I include

TESTS_DIR := tools/testing/selftests/net/kcm

.PHONY: lib kcmstat libkcm-pc man version deb check-deb check-man
.PHONY: all modules tests samples check check-locked check-debug check-kcsan fuzz run bench bench-build bench-selftest check-dkms check-autoload profile soak clean install
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

samples: $(SAMPLES) build/samples/kcmstat

build/samples/%: samples/kcm/%.c $(UAPI_HDRS)
	@mkdir -p $(@D)
	$(CC) $(SAMPLE_CFLAGS) -o $@ $<

# libkcm (tools/lib/kcm) and kcmstat (tools/kcmstat; in build/samples/ so
# that the VMs have it).
lib: build/lib/libkcm.a
build/lib/libkcm.a: $(wildcard tools/lib/kcm/*.[ch]) $(UAPI_HDRS)
	@$(MAKE) --no-print-directory -C tools/lib/kcm OUTPUT=$(CURDIR)/build/lib
kcmstat: build/samples/kcmstat
build/samples/kcmstat: $(wildcard tools/kcmstat/*.[ch]) dkms.conf
	@rm -f $@	# tools/kcmstat/Makefile does not know of dkms.conf
	@$(MAKE) --no-print-directory -C tools/kcmstat OUTPUT=$(CURDIR)/build/samples \
		KCM_VERSION=$(KCM_VERSION)

# libkcm.pc, for the prefix asked (written every time: the variables may
# change from one make to the next).
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include/kcm
libkcm-pc:
	@mkdir -p build/lib
	@sed -e 's|@VERSION@|$(KCM_VERSION)|' -e 's|@PREFIX@|$(PREFIX)|' \
		-e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		tools/lib/kcm/libkcm.pc.in >build/lib/libkcm.pc

# The man pages (man/), with @VERSION@ filled in.
MAN_PAGES := $(wildcard man/*.[1-8])
MAN_OUT := $(MAN_PAGES:man/%=build/man/%)
man: $(MAN_OUT)
build/man/%: man/% dkms.conf
	@mkdir -p $(@D)
	sed 's/@VERSION@/$(KCM_VERSION)/g' $< >$@

version:
	@echo $(KCM_VERSION)

# kcm_server embeds the framing programs of samples/kcm/bpf/ (BPF C) and
# loads them with libbpf; kcm_client uses libkcm.
build/bpf/%.bpf.o: samples/kcm/bpf/%.bpf.c
	@mkdir -p $(@D)
	clang -target bpf -O2 -g -Wall -Werror -I/usr/include/$(shell gcc -print-multiarch) -c -o $@ $<
build/samples/kcm_server: samples/kcm/kcm_server.c build/bpf/kcm_framing.bpf.o $(UAPI_HDRS)
	@mkdir -p $(@D)
	$(CC) $(SAMPLE_CFLAGS) -pthread -DKCM_FRAMING_OBJ='"$(CURDIR)/build/bpf/kcm_framing.bpf.o"' \
		-o $@ $< -l:libbpf.a -lelf -lz
build/samples/kcm_client: samples/kcm/kcm_client.c build/lib/libkcm.a $(UAPI_HDRS)
	@mkdir -p $(@D)
	$(CC) $(SAMPLE_CFLAGS) -I tools/lib/kcm -o $@ $< build/lib/libkcm.a
# kcm_tls_server and kcm_tls_client: a TLS handshake with OpenSSL (libssl).
build/samples/kcm_tls_server build/samples/kcm_tls_client: build/samples/%: samples/kcm/%.c $(UAPI_HDRS)
	@mkdir -p $(@D)
	$(CC) $(SAMPLE_CFLAGS) -pthread -o $@ $< -lssl -lcrypto

# One check at a time per work tree (they share build/tests and build/vm).
check:
	@mkdir -p build
	@flock -n build/.check.lock true || echo "check: another make check runs in this tree; waiting"
	@flock build/.check.lock $(MAKE) --no-print-directory check-locked

# Our module is built only when the ours lane runs: KCM=linux needs none.
# build/tests/ starts empty so that a deleted test cannot linger there.
check-locked:
	@scripts/install-deps.sh
	@rm -rf build/tests
	@$(MAKE) --no-print-directory $(if $(filter ours,$(KCM)),modules) tests samples
	@$(MAKE) --no-print-directory bench-selftest
	@$(MAKE) --no-print-directory check-man
	@if [ -z "$(TESTS)" ]; then scripts/dkms-check.sh; fi
	@if [ -z "$(TESTS)" ]; then scripts/deb/check.sh; fi
	@scripts/vm/check.sh
	@if [ -z "$(TESTS)" ] && [ -n "$(filter ours,$(KCM))" ]; then \
		scripts/vm/autoload.sh $$(scripts/kernels.sh $(KERNELS)); fi

# Debug kernels: scripts/debug-kernel/ (the first build takes ~15 min, then
# it is cached until configs/debug-base.config or the flavour's changes).
check-debug: KCM = ours
# Its own copy of the tests: a make check running meanwhile empties build/tests.
check-debug:
	@scripts/install-deps.sh
	@rm -rf build/debug-tests
	@$(MAKE) --no-print-directory kcmstat
	@$(MAKE) --no-print-directory -C $(TESTS_DIR) OUTPUT=$(CURDIR)/build/debug-tests
	@DEBUG_TESTS=$(CURDIR)/build/debug-tests scripts/debug-kernel/check.sh

check-kcsan: KCM = ours
check-kcsan:
	@scripts/install-deps.sh
	@rm -rf build/kcsan-tests
	@$(MAKE) --no-print-directory kcmstat
	@$(MAKE) --no-print-directory -C $(TESTS_DIR) OUTPUT=$(CURDIR)/build/kcsan-tests
	@DEBUG_FLAVOUR=kcsan DEBUG_TESTS=$(CURDIR)/build/kcsan-tests scripts/debug-kernel/check.sh

fuzz: KCM = ours
fuzz:
	@scripts/install-deps.sh
	@scripts/debug-kernel/check.sh fuzz $(DURATION)

run: KERNELS = 6.12
run:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory $(if $(filter ours,$(KCM)),modules) samples
	@kver=$$(scripts/kernels.sh $(KERNELS) | tail -n1); \
	lane=$(if $(filter ours,$(KCM)),ours,linux); \
	echo "run: $(DEMO) on $$kver ($$lane), kernel log in build/vm/$$kver-$$lane-run/console.log"; \
	scripts/vm/run-vm.sh run $$kver $$lane $(DEMO)

# What bench and profile run: the module and kcm_bench.
bench-build:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory modules
	@$(MAKE) --no-print-directory -C $(TESTS_DIR)/bench OUTPUT=$(CURDIR)/build/bench/bin

# README's "With DKMS, from the tree", run as it is (scripts/dkms-check.sh).
check-dkms:
	@scripts/install-deps.sh
	@scripts/dkms-check.sh

# The Debian packages (scripts/deb/): built, and, for check-deb, installed
# with dpkg -i as README says, checked and purged.  Host only, no VM.
deb:
	@scripts/deb/build.sh

check-deb:
	@scripts/install-deps.sh
	@scripts/deb/check.sh

# man/*: man and groff warn of nothing, the EXAMPLES programs compile.
check-man: man lib
	@scripts/check-man.sh $(MAN_OUT)

check-autoload: modules
	@scripts/install-deps.sh
	@scripts/vm/autoload.sh $$(scripts/kernels.sh $(KERNELS))

# kcm_bench's user-space variants on the host, with faults injected: the
# benchmark's data check must fail them (no module, no VM).
bench-selftest:
	@$(MAKE) --no-print-directory -C $(TESTS_DIR)/bench OUTPUT=$(CURDIR)/build/bench/bin
	@$(TESTS_DIR)/bench/selftest.sh $(CURDIR)/build/bench/bin/kcm_bench

# One VM per lane, one at a time; see scripts/bench/bench.sh for BENCH_*.
bench: KERNELS = 6.12
bench: bench-build
	@scripts/bench/bench.sh

# One bench case under perf in the VM (scripts/bench/profile.sh; PROFILE=).
profile: KERNELS = 6.12
profile: bench-build
	@scripts/bench/profile.sh

# kcm_soak's long form in one VM per kernel x QEMU mode, our module only.
# Its own copy of kcm_soak: a make check running meanwhile empties build/tests.
soak: KCM = ours
soak:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory modules
	@$(MAKE) --no-print-directory -C $(TESTS_DIR) OUTPUT=$(CURDIR)/build/soak/bin \
		$(CURDIR)/build/soak/bin/kcm_soak
	@SOAK_BIN=$(CURDIR)/build/soak/bin/kcm_soak scripts/vm/soak.sh

# Installs our kcm.ko for KVER (default: the running kernel) in updates/,
# which modprobe prefers to the kernel's own net/kcm/kcm.ko.
KVER ?= $(shell uname -r)
install:
	@scripts/build-module.sh $(KVER)
	install -D -m 0644 build/$(KVER)/kcm.ko $(DESTDIR)/lib/modules/$(KVER)/updates/kcm.ko
	$(if $(DESTDIR),,depmod -a $(KVER))

clean:
	@if [ -f $(TESTS_DIR)/Makefile ]; then \
		$(MAKE) -C $(TESTS_DIR) OUTPUT=$(CURDIR)/build/tests clean >/dev/null 2>&1 || true; fi
	rm -rf build

# In-tree build (scripts/intree/): the patch against linux-source-6.12, and
# the check that builds it with AF_KCM=y and runs the kselftests in QEMU.
.PHONY: intree-patch check-intree
intree-patch:
	@scripts/intree/gen-patch.sh build/intree/kcm-intree.patch

check-intree:
	@scripts/intree/check.sh

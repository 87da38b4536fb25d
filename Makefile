# cellvm build. `make run` boots a VM, `make test` runs every test; both
# install missing Debian packages first (scripts/deps.sh).

ifeq ($(origin CC),default)
CC := gcc
endif
BUILD ?= build
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
CFLAGS ?= -O2 -g
WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
CPPFLAGS := -Isrc -D_GNU_SOURCE -DCELLVM_VERSION='"$(VERSION)"' -MMD -MP $(shell pkg-config --cflags slirp libnbd gnutls libseccomp 2>/dev/null)
# Libraries every process needs, linked in statically where Debian has the
# archive: a VM maps nothing it does not use (each mapped library costs
# resident pages for its relocations and start-up code).
CORE_LIBS := -Wl,-Bstatic -luring -lseccomp -ljansson -lz -Wl,-Bdynamic -lpthread
# Modules (src/util/module.h): parts whose libraries are large, built as
# cellvm-NAME.so beside the executable and loaded by the processes that
# use them.
MODULES := nat nbd tls seal archive
MODULE_SRC_nat := src/net/nat.c
MODULE_SRC_nbd := src/block/nbd.c
MODULE_SRC_tls := src/migrate/tls.c
MODULE_SRC_seal := src/util/seal.c
MODULE_SRC_archive := src/manager/archive.c
MODULE_LIBS_nat := $(shell pkg-config --libs slirp 2>/dev/null)
MODULE_LIBS_nbd := $(shell pkg-config --libs libnbd 2>/dev/null)
MODULE_LIBS_tls := $(shell pkg-config --libs gnutls 2>/dev/null)
MODULE_LIBS_seal := $(MODULE_LIBS_tls)
MODULE_LIBS_archive := -larchive
MODULE_SRCS := $(foreach m,$(MODULES),$(MODULE_SRC_$(m)))
MODULE_SOS := $(MODULES:%=$(BUILD)/cellvm-%.so)
# Tests and fuzzers link the modules in; module_get() finds them there.
LDLIBS := $(CORE_LIBS) $(foreach m,$(MODULES),$(MODULE_LIBS_$(m))) -rdynamic
# Hardening of the host binary (checked by tests/e2e/test_hardening.py);
# sanitizer and fuzzer builds leave it out, since fortified libc calls hide
# accesses from ASan.
HARDEN := -fstack-protector-strong -fPIE -D_FORTIFY_SOURCE=3
HARDEN_LD := -pie -Wl,-z,relro,-z,now,-z,noexecstack
MODULE_HARDEN_LD := -Wl,-z,relro,-z,now,-z,noexecstack
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
HARDEN :=
endif

LIB_SRCS := $(filter-out $(MODULE_SRCS),$(shell find src -name '*.c' ! -name main.c | sort))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
MODULE_OBJS := $(MODULE_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

GUEST_INITRD := $(BUILD)/guest/initramfs.cpio
GUEST_CMDLINE ?= console=ttyS0 reboot=k panic=-1 quiet
PYTEST := /usr/bin/python3 -m pytest

.PHONY: FORCE all deps guest-kernel run test unit unit-asan fuzz fuzz-build fuzz-long e2e bench bench-boot bench-io bench-disk bench-net bench-api bench-snapshot bench-migrate bench-density bench-mmds guest clang-check clean

all: $(BUILD)/cellvm $(MODULE_SOS)

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(HARDEN) $(CFLAGS) -c -o $@ $<

$(BUILD)/libcellvm.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

# Modules are position-independent code for a shared object.
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(subst -fPIE,,$(HARDEN)) -fPIC $(CFLAGS) -c -o $@ $<

define module_rule
$(BUILD)/cellvm-$(1).so: $(BUILD)/pic/$(MODULE_SRC_$(1):.c=.o)
	$$(CC) $$(LDFLAGS) -shared $$(if $$(HARDEN),$$(MODULE_HARDEN_LD)) -o $$@ $$< $(MODULE_LIBS_$(1))
endef
$(foreach m,$(MODULES),$(eval $(call module_rule,$(m))))

# The executable exports what the modules call of it, and nothing else;
# it holds all of the core, since a module may call what it does not.
$(BUILD)/modules.sym: $(MODULE_SRCS:%.c=$(BUILD)/pic/%.o)
	{ echo '{'; nm -u --format=just-symbols $^ | sort -u | sed 's/.*/  &;/'; echo '};'; } >$@

$(BUILD)/cellvm: $(BUILD)/obj/src/main.o $(BUILD)/libcellvm.a $(BUILD)/modules.sym
	$(CC) $(LDFLAGS) $(if $(HARDEN),$(HARDEN_LD)) -Wl,--dynamic-list=$(BUILD)/modules.sym -o $@ \
		$(BUILD)/obj/src/main.o -Wl,--whole-archive $(BUILD)/libcellvm.a -Wl,--no-whole-archive $(CORE_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(MODULE_OBJS) $(BUILD)/libcellvm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

# Always regenerated (0.2 s, byte-identical output): its content depends on
# which kernel scripts/kernel.sh picks.
$(GUEST_INITRD): FORCE
	@scripts/mkinitramfs.sh $@ "$$(scripts/kernel.sh)"

FORCE:

guest: deps $(GUEST_INITRD)

# The shared PVM kernel (../shared/guest) still needs pti=on; guest/'s
# forces what PVM needs itself.
run: deps $(BUILD)/cellvm $(GUEST_INITRD)
	@k="$$(scripts/kernel.sh)"; case "$$k" in */shared/guest/*) pti=" pti=on";; *) pti="";; esac; \
	echo "booting $$k"; \
	$(BUILD)/cellvm run --kernel "$$k" --initrd $(GUEST_INITRD) --memory 512M --cmdline "$(GUEST_CMDLINE)$$pti"

# cellvm's own guest kernel (see guest/README.md); cached after the first build.
guest-kernel:
	guest/build.sh

# Runs every test binary, then fails if any failed (so one failure does not
# hide the rest).
unit: $(UNIT_BINS)
	@failed=""; for t in $(UNIT_BINS); do echo "== $$t"; $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "unit tests failed:$$failed"; exit 1; fi

# The same unit tests under AddressSanitizer and UndefinedBehaviorSanitizer.
unit-asan:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan SAN=1 unit

e2e: $(BUILD)/cellvm $(GUEST_INITRD)
	CELLVM_BIN=$(abspath $(BUILD)/cellvm) CELLVM_INITRD=$(abspath $(GUEST_INITRD)) \
		$(PYTEST) -q tests/e2e

test: deps
	$(MAKE) --no-print-directory all unit unit-asan fuzz e2e

# libFuzzer targets (tests/fuzz/fuzz_*.c) for what a guest or a user feeds
# cellvm, built with clang and ASan+UBSan; `make fuzz` first replays every
# input in tests/fuzz/regressions/TARGET/ (crashes found before), then runs
# each target for FUZZ_SECONDS from a seed corpus made by
# scripts/fuzz-seeds.py; a crash, leak or hang fails and leaves its input in
# build/fuzz/artifacts-TARGET/. FUZZ_SECONDS defaults to a share of one
# minute for all targets together (what CI spends); `make fuzz-long
# SECONDS=N` runs each for N seconds.
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_SECONDS ?= $(shell n=$(words $(FUZZ_BINS)); echo $$(( n < 60 ? 60 / n : 1 )))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all

fuzz-build:
	$(MAKE) --no-print-directory CC=clang BUILD=$(FUZZ_BUILD) HARDEN= CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
		$(FUZZ_BUILD)/libcellvm.a $(MODULE_OBJS:$(BUILD)/%=$(FUZZ_BUILD)/%)
	@for src in $(FUZZ_SRCS); do \
		bin=$(FUZZ_BUILD)/$$(basename $$src .c); \
		echo "clang -o $$bin $$src"; \
		clang $(CPPFLAGS) $(WARN) -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) -o $$bin $$src $(MODULE_OBJS:$(BUILD)/%=$(FUZZ_BUILD)/%) $(FUZZ_BUILD)/libcellvm.a $(LDLIBS) || exit 1; \
	done

fuzz: fuzz-build
	@for bin in $(FUZZ_BINS); do \
		name=$$(basename $$bin); corpus=$(FUZZ_BUILD)/corpus-$$name; art=$(FUZZ_BUILD)/artifacts-$$name; \
		rm -rf $$art; mkdir -p $$corpus $$art; \
		regs=$$(find tests/fuzz/regressions/$$name -type f 2>/dev/null | sort); \
		if [ -n "$$regs" ]; then \
			echo "== $$name: $$(echo $$regs | wc -w) regression inputs"; \
			$$bin $$regs >$$art/regressions.log 2>&1 || { tail -n 30 $$art/regressions.log; echo "fuzz: $$name regression failed"; exit 1; }; \
			rm $$art/regressions.log; \
		fi; \
		/usr/bin/python3 scripts/fuzz-seeds.py $$name $$corpus || exit 1; \
		echo "== $$name ($(FUZZ_SECONDS) s)"; \
		$$bin -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=$$art/ $$corpus 2>&1 | tail -n 5; \
		[ -z "$$(ls $$art)" ] || { echo "fuzz: $$name failed, see $$art"; exit 1; }; \
	done

SECONDS ?= 600
fuzz-long:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(SECONDS)

# Compile-only check that the tree also builds with clang.
clang-check:
	$(MAKE) --no-print-directory CC=clang BUILD=$(BUILD)/clang all

# Benchmarks print numbers (and QEMU's beside them where QEMU can boot the
# kernel); they assert nothing. `make bench` runs them all, or one each:
# bench-boot, bench-io, bench-disk, bench-net, bench-api, bench-snapshot,
# bench-migrate, bench-density, bench-mmds.
BENCH_ARGS = --cellvm $(BUILD)/cellvm --initrd $(GUEST_INITRD) --kernel "$$(scripts/kernel.sh)"
BENCHES := boot io disk net api snapshot migrate density mmds

bench: $(BENCHES:%=bench-%)

bench-boot: deps $(BUILD)/cellvm $(GUEST_INITRD)
	/usr/bin/python3 bench/bench.py $(BENCH_ARGS)

bench-io bench-disk bench-net bench-api bench-snapshot bench-migrate bench-density bench-mmds: bench-%: deps $(BUILD)/cellvm $(GUEST_INITRD)
	/usr/bin/python3 bench/$*.py $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# abswitch: one non-recursive Makefile.
#
#   make            the init (build/abswitch-init) and the host tools
#   make check      unit tests (cmocka, ASan+UBSan), abctl on disk images, the power-cut matrix,
#                   QEMU/OVMF e2e tests
#   make bench      abswitch against dracut and a minimal floor initramfs (QUICK=1: one boot each)
#   make demo       a two-slot disk booted in QEMU, slot A then slot B
#   make deps       install build/test packages, build the static musl libraries
#
# Everything lands in build/. Static libraries and the test kernel are cached
# in $(ABSWITCH_CACHE) (default /var/cache/abswitch) by initramfs/deps.sh.

BUILD      ?= build
PC         := $(BUILD)/powercut
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo 0.1)
# -Wno-format-truncation: snprintf into fixed buffers is how we bound sysfs and
# device paths on purpose; the warning fires on every such call.
WARNINGS   := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wno-format-truncation
CSTD       := -std=gnu11
MUSL_CC    ?= musl-gcc
HOST_CC    ?= gcc
# Debian's interpreter, where python3-pytest is installed (not a pyenv one on PATH).
PYTHON     ?= /usr/bin/python3

ifeq ($(filter clean,$(MAKECMDGOALS)),)
-include $(BUILD)/deps.mk
# The image the e2e tests boot (initramfs/deps.sh: the same kernel, a zstd payload).
TEST_KERNEL_IMAGE ?= $(KERNEL_IMAGE)
endif

.PHONY: all deps check unit e2e tools demo clean e2e-artifacts bench bench-oci tbprof oci-image powercut fuzz lint
all: $(BUILD)/abswitch-init $(BUILD)/abctl

$(BUILD)/deps.mk: initramfs/deps.sh initramfs/testkernel.sh
	@mkdir -p $(BUILD)
	OUT=$@ initramfs/deps.sh

deps: $(BUILD)/deps.mk

# ---- the init: static, musl ------------------------------------------------
COMMON_SRC := common/log.c common/io.c common/version.c
# The boot record (json-c): the init writes it, abctl reads it.
RECORD_SRC := common/record.c
PURE_SRC   := efi/cmdline.c slots/identity.c slots/state.c slots/ops.c efi/parse.c efi/efivar.c efi/bootmgr.c efi/pe.c \
              efi/secureboot.c efi/damage.c
# Thin I/O adapters the unit tests also run (on image files).
IO_SRC     := slots/gpt.c slots/store.c slots/engine.c efi/bootvars.c
# The TPM commands, by hand (init/tpm2.c says why), and their I/O.
TPM_SRC    := init/tpm2.c
INIT_SRC   := $(COMMON_SRC) $(RECORD_SRC) $(PURE_SRC) $(IO_SRC) init/main.c init/modules.c init/protocol.c \
              init/switchroot.c init/watch.c init/measure.c init/kexec.c init/memlock.c efi/kexec.c $(TPM_SRC) slots/partitions.c \
              verity/verity.c
INIT_HDR   := $(wildcard common/*.h init/*.h slots/*.h efi/*.h verity/*.h)

# No unwind tables: nothing in a C init unwinds (no C++, no backtraces), and the
# libraries' .eh_frame goes at strip time (10% of the init).
MUSL_CFLAGS  = $(CSTD) $(WARNINGS) -Os -ffunction-sections -fdata-sections \
               -fno-asynchronous-unwind-tables -fno-unwind-tables \
               -isystem $(MUSL_PREFIX)/kinc -I$(MUSL_PREFIX)/include -I$(MUSL_PREFIX)/include/blkid \
               -DABSWITCH_VERSION='"$(VERSION)"'
MUSL_LDFLAGS = -static -Wl,--gc-sections -L$(MUSL_PREFIX)/lib
INIT_LIBS    = -lcryptsetup -lnettle -ldevmapper -ljson-c -lblkid -luuid -lkmod -lz

$(BUILD)/abswitch-init.unstripped: $(INIT_SRC) $(INIT_HDR) $(BUILD)/deps.mk
	$(MUSL_CC) $(MUSL_CFLAGS) $(MUSL_LDFLAGS) -Wl,--wrap=mlock,--wrap=munlock -Wl,-Map=$(BUILD)/abswitch-init.map \
	  -o $@ $(INIT_SRC) $(INIT_LIBS)

$(BUILD)/abswitch-init: $(BUILD)/abswitch-init.unstripped
	strip -R .eh_frame -R .eh_frame_hdr -o $@ $<

# abctl: static too, so it runs in any root, however small.
ABCTL_SRC := $(COMMON_SRC) $(RECORD_SRC) $(PURE_SRC) $(IO_SRC) slots/partitions.c verity/verity.c efi/uki.c abctl/abctl.c \
             abctl/install.c abctl/source-files.c abctl/source-oci.c abctl/esp.c abctl/blockdev.c abctl/verify.c \
             abctl/util.c abctl/oci.c abctl/ranges.c abctl/delta.c abctl/delta-tree.c abctl/ociparse.c abctl/auth.c \
             abctl/signature.c abctl/origin.c abctl/repair.c abctl/update.c abctl/updateconf.c abctl/rollout.c \
             abctl/fleetlock.c abctl/kexec.c efi/kexec.c
ABCTL_HDR := abctl/abctl.h abctl/oci.h abctl/ocifetch.h abctl/auth.h abctl/source.h abctl/esp.h abctl/blockdev.h \
             abctl/signature.h abctl/origin.h abctl/ranges.h abctl/delta.h abctl/update.h
# libcurl (HTTP, HTTPS over mbedtls) and mbedtls's SHA-256 for registries;
# OpenSSL's libcrypto (its own cache directory) for UKI signatures
# (abctl/signature.c: PKCS#7, which mbedtls 2.28 lacks). The init links neither.
ABCTL_LIBS := -lcurl -lmbedtls -lmbedx509 -lmbedcrypto -lcryptsetup -lnettle -ldevmapper -ljson-c -lblkid -luuid -lz \
              -L$(OPENSSL_PREFIX)/lib -lcrypto
$(BUILD)/abctl: $(ABCTL_SRC) $(INIT_HDR) $(ABCTL_HDR) $(BUILD)/deps.mk
	$(MUSL_CC) $(MUSL_CFLAGS) -I$(OPENSSL_PREFIX)/include $(MUSL_LDFLAGS) -o $@ $(ABCTL_SRC) $(ABCTL_LIBS) -lpthread
	strip $@

# The test root's /sbin/init: prints one checkable line and powers off.
$(BUILD)/test-rootinit: tests/e2e/rootinit.c $(BUILD)/deps.mk
	$(MUSL_CC) $(CSTD) $(WARNINGS) -Os -static -isystem $(MUSL_PREFIX)/kinc -o $@ $<
	strip $@

# ---- unit tests: glibc, ASan + UBSan, cmocka ---------------------------------
SAN_CFLAGS := $(CSTD) $(WARNINGS) -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
              -fno-omit-frame-pointer -DUNIT_TEST
UNIT_TESTS := cmdline identity efi state gpt ops version secureboot damage io

$(BUILD)/unit/test-%: tests/unit/test-%.c $(COMMON_SRC) $(PURE_SRC) $(IO_SRC) $(INIT_HDR) tests/unit/unit.h
	@mkdir -p $(BUILD)/unit
	$(HOST_CC) $(SAN_CFLAGS) -o $@ $< $(COMMON_SRC) $(PURE_SRC) $(IO_SRC) -lcmocka -lz

# abctl's OCI parsers: json-c, nothing else.
$(BUILD)/unit/test-oci: tests/unit/test-oci.c abctl/ociparse.c abctl/oci.h tests/unit/unit.h
	@mkdir -p $(BUILD)/unit
	$(HOST_CC) $(SAN_CFLAGS) -o $@ $< abctl/ociparse.c -lcmocka -ljson-c
UNIT_TESTS += oci
# Registry credentials (abctl/auth.c): json-c and mbedtls's base64.
$(BUILD)/unit/test-auth: tests/unit/test-auth.c abctl/auth.c abctl/auth.h tests/unit/unit.h
	@mkdir -p $(BUILD)/unit
	$(HOST_CC) $(SAN_CFLAGS) -o $@ $< abctl/auth.c -lcmocka -ljson-c -lmbedcrypto
UNIT_TESTS += auth

# The init's TPM 2.0 marshalling, against byte vectors.
$(BUILD)/unit/test-tpm2: tests/unit/test-tpm2.c $(TPM_SRC) $(COMMON_SRC) $(PURE_SRC) $(INIT_HDR) tests/unit/unit.h
	@mkdir -p $(BUILD)/unit
	$(HOST_CC) $(SAN_CFLAGS) -o $@ $< $(TPM_SRC) $(COMMON_SRC) $(PURE_SRC) -lcmocka -lz
UNIT_TESTS += tpm2

# The boot record's one schema: json-c, nothing else.
$(BUILD)/unit/test-record: tests/unit/test-record.c $(RECORD_SRC) common/io.c common/record.h common/macro.h tests/unit/unit.h
	@mkdir -p $(BUILD)/unit
	$(HOST_CC) $(SAN_CFLAGS) -o $@ $< $(RECORD_SRC) common/io.c -lcmocka -ljson-c
UNIT_TESTS += record

# A slot's origin on the ESP (abctl/origin.c): json-c.
$(BUILD)/unit/test-origin: tests/unit/test-origin.c abctl/origin.c abctl/util.c abctl/origin.h $(COMMON_SRC) $(PURE_SRC) $(IO_SRC) efi/uki.c tests/unit/unit.h
	@mkdir -p $(BUILD)/unit
	$(HOST_CC) $(SAN_CFLAGS) -I/usr/include/blkid -o $@ $< abctl/origin.c abctl/util.c $(COMMON_SRC) $(PURE_SRC) $(IO_SRC) efi/uki.c -lcmocka -ljson-c -lz -lblkid
UNIT_TESTS += origin

# The update agent's pure parts: windows, update.conf, rollouts, FleetLock's body (json-c, mbedtls's HMAC).
UPDATE_PURE_SRC := abctl/updateconf.c abctl/rollout.c abctl/fleetlock.c
$(BUILD)/unit/test-update: tests/unit/test-update.c $(UPDATE_PURE_SRC) abctl/update.h abctl/origin.h common/log.c tests/unit/unit.h
	@mkdir -p $(BUILD)/unit
	$(HOST_CC) $(SAN_CFLAGS) -I/usr/include/blkid -o $@ $< $(UPDATE_PURE_SRC) common/log.c -lcmocka -ljson-c -lmbedcrypto -lcurl
UNIT_TESTS += update

# Delta installs' pure parts (abctl/ranges.c, abctl/delta-tree.c): mbedtls's SHA-256.
$(BUILD)/unit/test-delta: tests/unit/test-delta.c abctl/ranges.c abctl/delta-tree.c abctl/ranges.h abctl/delta.h tests/unit/unit.h
	@mkdir -p $(BUILD)/unit
	$(HOST_CC) $(SAN_CFLAGS) -o $@ $< abctl/ranges.c abctl/delta-tree.c -lcmocka -lmbedcrypto
UNIT_TESTS += delta

# Every test stage uses all cores: TEST_JOBS unit binaries, clang-tidy files,
# fuzz targets, power cuts or pytest workers (pytest-xdist) at a time.
TEST_JOBS ?= $(shell nproc)
# $(call pytest_jobs,N): pytest-xdist's options for N workers (0: none, one process).
pytest_jobs = $(if $(filter-out 0,$(1)),$(if $(shell $(PYTHON) -c 'import xdist' 2>/dev/null && echo y), \
              -n $(1) --dist loadgroup,$(info pytest-xdist is not installed (make deps installs it): one process)))

# TEST_JOBS binaries at a time, each run once for its JUnit XML: a line per
# binary when it passes; when it fails, what it printed and a second run with
# cmocka's own output (each test, the failed check).
unit: $(addprefix $(BUILD)/unit/test-,$(UNIT_TESTS))
	@mkdir -p $(BUILD)/test-results
	@printf '%s\n' $(UNIT_TESTS) | xargs -P $(TEST_JOBS) -I{} sh -c '\
	  x=$(BUILD)/test-results/unit-{}.xml; out=$(BUILD)/unit/test-{}.out; rm -f $$x; \
	  if CMOCKA_MESSAGE_OUTPUT=xml CMOCKA_XML_FILE=$$x $(BUILD)/unit/test-{} > $$out 2>&1; then \
	    sed -n "s/.*<testsuite name=\"\([^\"]*\)\" time=\"\([^\"]*\)\" tests=\"\([0-9]*\)\" failures=\"0\" errors=\"0\".*/unit: test-{} (\1): \3 tests passed in \2 s/p" $$x; \
	  else cat $$out; echo "unit: test-{} FAILED; run again with its own output:"; $(BUILD)/unit/test-{}; exit 1; fi'

# ---- images for the end-to-end tests and the demo ---------------------------
E2E := $(BUILD)/e2e
STUB ?= /usr/lib/systemd/boot/efi/linuxx64.efi.stub

$(E2E)/initramfs.img: $(BUILD)/abswitch-init initramfs/mkinitramfs $(BUILD)/deps.mk
	@mkdir -p $(E2E)
	initramfs/mkinitramfs --init $(BUILD)/abswitch-init --kernel-root $(KERNEL_ROOT) \
	  --kver $(KERNEL_VERSION) --module virtio_pci --module virtio_blk --module i6300esb \
	  --module vfat --module nls_cp437 --module nls_ascii --output $@

# Secure Boot test keys (never committed; README "Secure Boot"): the snakeoil
# key that Debian's OVMF_VARS_4M.snakeoil.fd holds in PK, KEK and db
# (passphrase "snakeoil", decrypted once for sbsign), and a "stranger" key
# pair that no db holds. The e2e UKIs are signed with snakeoil: they boot
# with Secure Boot on and off alike.
KEYS       := $(BUILD)/keys
OVMF_KEY   ?= /usr/share/ovmf/PkKek-1-snakeoil
SB_SIGN     = --sign-key $(KEYS)/snakeoil.key --sign-cert $(KEYS)/snakeoil.pem
$(KEYS)/snakeoil.key: $(OVMF_KEY).key
	@mkdir -p $(@D)
	(umask 077; openssl rsa -in $< -passin pass:snakeoil -out $@.tmp 2>/dev/null) && mv $@.tmp $@
$(KEYS)/snakeoil.pem: $(OVMF_KEY).pem
	@mkdir -p $(@D)
	cp $< $@
$(KEYS)/stranger.key:
	@mkdir -p $(@D)
	(umask 077; openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 36500 -subj "/CN=abswitch test stranger (in no db)/" \
	  -keyout $@.tmp -out $(KEYS)/stranger.pem 2>/dev/null) && mv $@.tmp $@
$(KEYS)/stranger.pem: $(KEYS)/stranger.key
SB_KEYS := $(KEYS)/snakeoil.key $(KEYS)/snakeoil.pem $(KEYS)/stranger.key $(KEYS)/stranger.pem

# A test root per slot: different contents, so a test can tell them apart.
$(E2E)/root-%/.done: $(BUILD)/test-rootinit $(BUILD)/abctl tests/e2e/mkroot
	CURL=$(MUSL_PREFIX)/bin/curl tests/e2e/mkroot $(BUILD)/test-rootinit $(firstword $(subst -, ,$*)) $(@D) $(word 2,$(subst -, ,$*))
	@touch $@

# Slot A's test root that installs v2 (B's "commit" image and its UKI) with abctl. The UKIs the
# tests boot first are version 1 (tests/e2e/abvm.py), each update a newer one: abctl refuses
# downgrades.
$(E2E)/v2-boot-b.efi: $(E2E)/initramfs.img $(E2E)/slot-b-commit.img initramfs/mkuki $(SB_KEYS)
	initramfs/mkuki --kernel $(TEST_KERNEL_IMAGE) --initrd $(E2E)/initramfs.img $(SB_SIGN) \
	  --roothash @$(E2E)/slot-b-commit.roothash --cmdline "console=ttyS0,115200 panic=-1 no_timer_check" --version 2 --output $@

$(E2E)/root-a-installer/.done: $(BUILD)/test-rootinit $(BUILD)/abctl tests/e2e/mkroot $(E2E)/v2-boot-b.efi
	INSTALL_PAYLOAD=$(E2E)/slot-b-commit INSTALL_UKI=$(E2E)/v2-boot-b.efi \
	  tests/e2e/mkroot $(BUILD)/test-rootinit a $(@D) installer
	@touch $@

# The same, then "abctl reboot --kexec": B's trial starts without a firmware reset (tests/e2e/test_kexec.py).
$(E2E)/root-a-kexec/.done: $(BUILD)/test-rootinit $(BUILD)/abctl tests/e2e/mkroot $(E2E)/v2-boot-b.efi
	INSTALL_PAYLOAD=$(E2E)/slot-b-commit INSTALL_UKI=$(E2E)/v2-boot-b.efi \
	  tests/e2e/mkroot $(BUILD)/test-rootinit a $(@D) installer
	echo "/usr/bin/abctl reboot --kexec" >> $(@D)/etc/abswitch-test-run
	@touch $@

# The same, but the UKI pins another image's root hash: install must refuse.
$(E2E)/v1-boot-b.efi: $(E2E)/initramfs.img $(E2E)/slot-b.img initramfs/mkuki $(SB_KEYS)
	initramfs/mkuki --kernel $(TEST_KERNEL_IMAGE) --initrd $(E2E)/initramfs.img $(SB_SIGN) \
	  --roothash @$(E2E)/slot-b.roothash --cmdline "console=ttyS0,115200 panic=-1" --version 1 --output $@

$(E2E)/root-a-mismatch/.done: $(BUILD)/test-rootinit $(BUILD)/abctl tests/e2e/mkroot $(E2E)/v1-boot-b.efi
	INSTALL_PAYLOAD=$(E2E)/slot-b-commit INSTALL_UKI=$(E2E)/v1-boot-b.efi \
	  tests/e2e/mkroot $(BUILD)/test-rootinit a $(@D) installer
	@touch $@

# The OS image v2 (B's "commit" image and its UKI) as an OCI layout, and slot A's
# test root that installs it from there or from a registry (tests/e2e/test_registry.py).
$(E2E)/oci-v2/index.json: $(E2E)/slot-b-commit.img $(E2E)/v2-boot-b.efi initramfs/mkoci
	initramfs/mkoci --image $(E2E)/slot-b-commit --uki $(E2E)/v2-boot-b.efi --name "abswitch test" --version 2 \
	  --tag v2 --output $(@D)

# The image the self-healing scenario installs from the registry (tests/e2e/test_heal.py): B's
# commit root plus /data/blob; not in slot A's net root, whose OCI layout holds every block of v2.
$(E2E)/v2heal-boot-b.efi: $(E2E)/initramfs.img $(E2E)/slot-b-heal.img initramfs/mkuki $(SB_KEYS)
	initramfs/mkuki --kernel $(TEST_KERNEL_IMAGE) --initrd $(E2E)/initramfs.img $(SB_SIGN) \
	  --roothash @$(E2E)/slot-b-heal.roothash --cmdline "console=ttyS0,115200 panic=-1" --version 2 --output $@
$(E2E)/oci-heal/index.json: $(E2E)/slot-b-heal.img $(E2E)/v2heal-boot-b.efi initramfs/mkoci
	initramfs/mkoci --image $(E2E)/slot-b-heal --uki $(E2E)/v2heal-boot-b.efi --name "abswitch heal test" --version 2 \
	  --tag v2 --output $(@D)

$(E2E)/root-a-net/.done: $(BUILD)/test-rootinit $(BUILD)/abctl tests/e2e/mkroot $(E2E)/oci-v2/index.json
	CURL=$(MUSL_PREFIX)/bin/curl KERNEL_ROOT=$(KERNEL_ROOT) KERNEL_VERSION=$(KERNEL_VERSION) OCI_LAYOUT=$(E2E)/oci-v2 \
	  tests/e2e/mkroot $(BUILD)/test-rootinit a $(@D) net
	@touch $@

# A real Debian (debootstrap minbase + systemd) with abctl and abswitch-mark-good.service,
# the UKI kernel's modules, plus the test's health check and report units
# (tests/e2e/test_systemd.py); SquashFS.
DEBIAN_OVERLAY := $(shell find tests/e2e/debian-overlay 2>/dev/null)
$(E2E)/root-debian/.done: $(BUILD)/abctl initramfs/mkdebian abctl/abswitch-mark-good.service $(DEBIAN_OVERLAY) \
                          $(BUILD)/deps.mk
	initramfs/mkdebian --abctl $(BUILD)/abctl --kernel-root $(KERNEL_ROOT) --kver $(KERNEL_VERSION) \
	  --overlay tests/e2e/debian-overlay --output $(@D)
	@touch $@

$(E2E)/slot-debian.img: $(E2E)/root-debian/.done initramfs/mkslot
	initramfs/mkslot --root $(E2E)/root-debian --fs squashfs --output $(E2E)/slot-debian

$(E2E)/slot-%.img: $(E2E)/root-%/.done initramfs/mkslot
	initramfs/mkslot --root $(E2E)/root-$* --fs erofs --output $(E2E)/slot-$*

e2e-artifacts: $(E2E)/initramfs.img $(E2E)/slot-a.img $(E2E)/slot-b.img $(E2E)/slot-b-hang.img $(E2E)/slot-b-commit.img \
              $(E2E)/slot-a-reader.img \
              $(E2E)/slot-a-installer.img $(E2E)/slot-a-mismatch.img $(E2E)/slot-a-net.img $(E2E)/oci-heal/index.json \
              $(E2E)/slot-a-kexec.img \
              $(E2E)/slot-debian.img $(SB_KEYS) $(BUILD)/deps.mk
	@printf '%s\n' "KERNEL_IMAGE=$(TEST_KERNEL_IMAGE)" "DEBIAN_KERNEL_IMAGE=$(KERNEL_IMAGE)" \
	  "KERNEL_ROOT=$(KERNEL_ROOT)" "KERNEL_VERSION=$(KERNEL_VERSION)" > $(E2E)/env

# Keep the test roots between runs (they are stamps of a pattern chain).
.SECONDARY:

# Both suites on every core: pytest-xdist, TEST_JOBS workers (E2E_JOBS=0: one
# process, as before). tests/conftest.py keeps tests that share a wider fixture
# on one worker and starts the longest first, from the times the last run
# measured (build/test-results/durations-STAGE.json).
E2E_TESTS ?= tests/e2e
E2E_ARGS ?=
E2E_JOBS ?= $(TEST_JOBS)
e2e: e2e-artifacts
	@mkdir -p $(BUILD)/test-results
	ABSWITCH_DURATIONS=$(BUILD)/test-results/durations-e2e.json \
	  $(PYTHON) -m pytest -v -p no:cacheprovider $(call pytest_jobs,$(E2E_JOBS)) --durations=10 \
	  --junitxml=$(BUILD)/test-results/e2e.xml $(E2E_ARGS) $(E2E_TESTS)

# abctl on disk images and a stand-in efivarfs directory: no VM. These tests
# mostly wait (sgdisk syncs and sleeps a second per write, retry deadlines),
# so twice as many workers as TEST_JOBS (measured: 2 workers 106 s, 4: 61 s, 8: 58 s).
TOOLS_JOBS ?= $(shell echo $$(( 2 * $(TEST_JOBS) )))
tools: $(BUILD)/abctl $(PC)/abctl $(PC)/bootsim $(PC)/cutter e2e-artifacts
	@mkdir -p $(BUILD)/test-results
	ABSWITCH_DURATIONS=$(BUILD)/test-results/durations-tools.json \
	  $(PYTHON) -m pytest -v -p no:cacheprovider $(call pytest_jobs,$(TOOLS_JOBS)) \
	  --junitxml=$(BUILD)/test-results/tools.xml tests/tools

# ---- make check: every stage, timed ------------------------------------------
# "build" compiles every test binary and the e2e images, TEST_JOBS at a time.
# Then three chains run side by side, since the machine's two cores are the
# limit and the e2e stage alone is most of the work:
#   e2e                                  (two VMs, the foreground)
#   tools, powercut, unit, fuzz, nice 10 (host tests: they mostly wait on sgdisk
#                                         syncs, registries and deadlines, and
#                                         pass as well at nice 19 beside the VMs;
#                                         the VMs are the critical path; the fuzz
#                                         pass runs its fixed seconds per target)
#   lint, at nice 19                     (pure CPU, no deadlines: it takes what
#                                         the others leave idle; unit and fuzz
#                                         after it made this chain the longest)
# A chain stops at its first failing stage; check fails if any stage failed.
# CHECK_SERIAL=1 runs every stage one after the other. Each stage's wall time,
# its start and the load average when it started are printed at the end and
# written to build/test-results/stage-times.json; each side chain's output is
# printed after the e2e stage's.
# A short fuzz pass in check; longer runs: make fuzz FUZZ_SECONDS=600.
CHECK_FUZZ_SECONDS ?= 5
CHECK_SERIAL ?=
STAGE_TIMES := $(BUILD)/test-results/stage-times
CHECK_BUILD = all $(addprefix $(BUILD)/unit/test-,$(UNIT_TESTS)) $(addprefix $(BUILD)/fuzz/fuzz-,$(FUZZ_TARGETS)) \
               $(PC)/cutter $(PC)/bootsim $(PC)/abctl
# $(call run_stage,NAME,MAKE ARGUMENTS): runs one stage, appends "name rc ms load start-s" to
# the table; a failing stage's output is kept whole, the chain it is in stops.
run_stage = { l=$$(cut -d" " -f1 /proc/loadavg); t0=$$(date +%s%N); $(MAKE) --no-print-directory $(2); rc=$$?; \
	echo "$(1) $$rc $$(( ($$(date +%s%N) - t0) / 1000000 )) $$l $$(( (t0 - $$CHECK_T0) / 1000000000 ))" >> $(STAGE_TIMES).tsv; \
	[ $$rc = 0 ]; }
# The table and the JSON, from the lines run_stage appended.
stage_report = awk -v jobs=$(TEST_JOBS) -v json=$(STAGE_TIMES).json -v load="$$(cut -d" " -f1-3 /proc/loadavg)" \
	-v wall=$$(( ($$(date +%s%N) - CHECK_T0) / 1000000 )) ' \
	{ n++; s[n] = $$1; rc[n] = $$2; ms[n] = $$3; ld[n] = $$4; st[n] = $$5 } \
	END { printf "\ncheck: stage times (%d jobs; load average at the end %s)\n", jobs, load; \
	  printf "{\n  \"jobs\": %d,\n  \"load_average_at_end\": \"%s\",\n  \"stages\": [\n", jobs, load > json; \
	  for (i = 1; i <= n; i++) { \
	    printf "  %-10s %7.1f s  started at %4d s%s  (load %s at start)\n", s[i], ms[i] / 1000, st[i], \
	      rc[i] ? "  FAILED" : "", ld[i]; \
	    printf "    {\"stage\": \"%s\", \"seconds\": %.1f, \"started_at\": %d, \"exit\": %d, \"load_at_start\": %s}%s\n", \
	      s[i], ms[i] / 1000, st[i], rc[i], ld[i], i < n ? "," : "" > json } \
	  printf "  %-10s %7.1f s (wall)\n", "total", wall / 1000; \
	  printf "  ],\n  \"total_seconds\": %.1f\n}\n", wall / 1000 > json; \
	  printf "  (%s)\n", json }' $(STAGE_TIMES).tsv

check: deps
	@mkdir -p $(BUILD)/test-results; rm -f $(STAGE_TIMES).tsv $(STAGE_TIMES).json; \
	export CHECK_T0=$$(date +%s%N); \
	$(call run_stage,build,-j$(TEST_JOBS) $(CHECK_BUILD) e2e-artifacts) || { $(stage_report); exit 1; }; \
	lint_chain() { $(call run_stage,lint,lint); }; \
	host_chain() { $(call run_stage,tools,tools) && $(call run_stage,powercut,powercut) && \
	  $(call run_stage,unit,unit) && $(call run_stage,fuzz,fuzz FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS) FUZZ_SEED=1); }; \
	if [ -n "$(CHECK_SERIAL)" ]; then lint_chain && host_chain && $(call run_stage,e2e,e2e); rc=$$?; \
	else (renice -n 19 -p $$(sh -c 'echo $$PPID') >/dev/null; lint_chain) \
	    > $(BUILD)/test-results/check-lint.log 2>&1 & lint_pid=$$!; \
	  (renice -n 10 -p $$(sh -c 'echo $$PPID') >/dev/null; host_chain) \
	    > $(BUILD)/test-results/check-host.log 2>&1 & host_pid=$$!; \
	  $(call run_stage,e2e,e2e); rc=$$?; \
	  wait $$host_pid || rc=1; echo "check: tools, powercut, unit and fuzz (beside e2e):"; \
	  cat $(BUILD)/test-results/check-host.log; \
	  wait $$lint_pid || rc=1; echo "check: lint (beside e2e, at nice 19):"; \
	  cat $(BUILD)/test-results/check-lint.log; fi; \
	$(stage_report); exit $$rc

# The demo's story: A installs v2 into B; B commits itself and installs a
# v3 into A whose kernel panics before its initramfs runs.
$(E2E)/v3-boot-a.efi: $(E2E)/initramfs.img $(E2E)/slot-a.img initramfs/mkuki $(SB_KEYS)
	initramfs/mkuki --kernel $(TEST_KERNEL_IMAGE) --initrd $(E2E)/initramfs.img $(SB_SIGN) --roothash @$(E2E)/slot-a.roothash \
	  --cmdline "console=ttyS0,115200 panic=-1 rdinit=/nonexistent" --version 3 --output $@

$(E2E)/root-b-demo/.done: $(BUILD)/test-rootinit $(BUILD)/abctl tests/e2e/mkroot $(E2E)/v3-boot-a.efi
	COMMIT_FIRST=1 INSTALL_NAME=v3 INSTALL_PAYLOAD=$(E2E)/slot-a INSTALL_UKI=$(E2E)/v3-boot-a.efi \
	  tests/e2e/mkroot $(BUILD)/test-rootinit b $(@D) installer
	@touch $@

$(E2E)/v2demo-boot-b.efi: $(E2E)/initramfs.img $(E2E)/slot-b-demo.img initramfs/mkuki $(SB_KEYS)
	initramfs/mkuki --kernel $(TEST_KERNEL_IMAGE) --initrd $(E2E)/initramfs.img $(SB_SIGN) --roothash @$(E2E)/slot-b-demo.roothash \
	  --cmdline "console=ttyS0,115200 panic=-1" --version 2 --output $@

$(E2E)/root-a-demo/.done: $(BUILD)/test-rootinit $(BUILD)/abctl tests/e2e/mkroot $(E2E)/v2demo-boot-b.efi
	INSTALL_PAYLOAD=$(E2E)/slot-b-demo INSTALL_UKI=$(E2E)/v2demo-boot-b.efi \
	  tests/e2e/mkroot $(BUILD)/test-rootinit a $(@D) installer
	@touch $@

demo: deps
	$(MAKE) e2e-artifacts $(E2E)/slot-a-demo.img
	$(PYTHON) tests/e2e/demo

# ---- power cuts: every state-changing path, cut at every durable write -------
# Host builds (glibc, ASan+UBSan): abctl against Debian's libcryptsetup (and
# nettle, which verity/verity.c hashes with); bootsim, the init's
# protocol code on files; cutter, the ptrace fault injector.
PC_CFLAGS := $(CSTD) $(WARNINGS) -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
             -I/usr/include/blkid -DABSWITCH_VERSION='"$(VERSION)"'
$(PC)/cutter: tests/powercut/cutter.c
	@mkdir -p $(PC)
	$(HOST_CC) $(CSTD) $(WARNINGS) -O2 -o $@ $<

$(PC)/bootsim: tests/powercut/bootsim.c $(COMMON_SRC) $(PURE_SRC) $(IO_SRC) init/protocol.c slots/partitions.c $(INIT_HDR)
	@mkdir -p $(PC)
	$(HOST_CC) $(PC_CFLAGS) -o $@ $(filter %.c,$^) -lblkid -lz

$(PC)/abctl: $(ABCTL_SRC) $(INIT_HDR) $(ABCTL_HDR)
	@mkdir -p $(PC)
	$(HOST_CC) $(PC_CFLAGS) -DABCTL_TEST_HOOKS -o $@ $(ABCTL_SRC) -lcurl -lmbedcrypto -lcryptsetup -lnettle -ldevmapper -ljson-c -lblkid -lz -lcrypto

powercut: $(PC)/cutter $(PC)/bootsim $(PC)/abctl e2e-artifacts
	$(PYTHON) tests/powercut/powercut.py --build $(BUILD) --jobs $(TEST_JOBS)

# ---- static analysis: cppcheck and clang-tidy (.clang-tidy), both must be clean
LINT_SRC := $(sort $(COMMON_SRC) $(INIT_SRC) $(ABCTL_SRC)) tests/powercut/cutter.c tests/powercut/bootsim.c \
            bench/floor.c bench/cpumark.c
# memleak/resourceLeak: cppcheck does not know __attribute__((cleanup)) (see .clang-tidy).
lint:
	cppcheck -j $(TEST_JOBS) --enable=warning,portability,performance,style --std=c11 --inline-suppr --quiet \
	  --error-exitcode=1 -D__CPPCHECK__ -D__linux__ -D__x86_64__ -I common \
	  --suppress=missingIncludeSystem --suppress=memleak --suppress=resourceLeak $(LINT_SRC)
	@tests/lint-tidy $(TEST_JOBS) $(CSTD) -I/usr/include/blkid -D_GNU_SOURCE -- $(LINT_SRC)

# ---- fuzzing: libFuzzer targets for every parser of disk, firmware and user input
# make fuzz [FUZZ_SECONDS=N]: each target N seconds from tests/fuzz/corpus/<target>,
# new inputs kept in build/fuzz/corpus-<target>; results in build/fuzz/results.json.
FUZZ_TARGETS := cmdline efi bootvars gpt pe verity record oci auth tpm2 version secureboot updateconf damage deltatree
FUZZ_SECONDS ?= 60
# 0: a random start each run (libFuzzer's own); check fixes it, so that its
# short pass is the same search every time and a failure is reproducible.
FUZZ_SEED    ?= 0
FUZZ_CFLAGS  := $(CSTD) $(filter-out -Wno-format-truncation,$(WARNINGS)) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -I/usr/include/blkid
$(BUILD)/fuzz/fuzz-oci: tests/fuzz/fuzz-oci.c tests/fuzz/fuzz.h $(COMMON_SRC) abctl/ociparse.c abctl/oci.h
	@mkdir -p $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) abctl/ociparse.c -ljson-c

# A delta install's hash tree (abctl/delta-tree.c): from the registry, before it is verified.
$(BUILD)/fuzz/fuzz-deltatree: tests/fuzz/fuzz-deltatree.c tests/fuzz/fuzz.h $(COMMON_SRC) abctl/delta-tree.c abctl/delta.h
	@mkdir -p $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) abctl/delta-tree.c -lmbedcrypto

# Auth files (abctl/auth.c): written by operators and by podman login.
$(BUILD)/fuzz/fuzz-auth: tests/fuzz/fuzz-auth.c tests/fuzz/fuzz.h $(COMMON_SRC) abctl/auth.c abctl/auth.h
	@mkdir -p $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) abctl/auth.c -ljson-c -lmbedcrypto

# update.conf and a manifest's rollout annotations (abctl/updateconf.c, rollout.c).
$(BUILD)/fuzz/fuzz-updateconf: tests/fuzz/fuzz-updateconf.c tests/fuzz/fuzz.h $(COMMON_SRC) $(UPDATE_PURE_SRC) abctl/update.h
	@mkdir -p $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) $(UPDATE_PURE_SRC) -ljson-c -lmbedcrypto -lcurl

# TPM responses (init/tpm2.c): from hardware, on some machines from a bus an attacker reaches.
$(BUILD)/fuzz/fuzz-tpm2: tests/fuzz/fuzz-tpm2.c tests/fuzz/fuzz.h $(COMMON_SRC) $(PURE_SRC) $(TPM_SRC) $(INIT_HDR)
	@mkdir -p $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) $(PURE_SRC) $(TPM_SRC) -lz

$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c tests/fuzz/fuzz.h $(COMMON_SRC) $(PURE_SRC) $(IO_SRC) verity/verity.c $(RECORD_SRC) \
                     $(INIT_HDR)
	@mkdir -p $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) $(PURE_SRC) $(IO_SRC) verity/verity.c $(RECORD_SRC) \
	  -lcryptsetup -lnettle -ldevmapper -ljson-c -lz

# TEST_JOBS targets at a time, each for its FUZZ_SECONDS.
fuzz: $(addprefix $(BUILD)/fuzz/fuzz-,$(FUZZ_TARGETS))
	$(PYTHON) tests/fuzz/run.py --build $(BUILD) --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED) --jobs $(TEST_JOBS) \
	  $(FUZZ_TARGETS)

# ---- benchmark: abswitch against dracut (lean, generic) and the floor --------
# make bench [BOOTS=7] [PAIR_BOOTS=15] [ICOUNT_BOOTS=2] [QUICK=1] [VARIANTS=abswitch,floor]: see bench/bench.py.
# Not part of check.
BENCH := $(BUILD)/bench
BOOTS ?= 7
PAIR_BOOTS ?= 15
ICOUNT_BOOTS ?= 2
$(BENCH)/%: bench/%.c $(BUILD)/deps.mk
	@mkdir -p $(BENCH)
	$(MUSL_CC) $(CSTD) $(WARNINGS) -Os -static -isystem $(MUSL_PREFIX)/kinc -o $@ $<
	strip $@

# The production initramfs: the init and what a virtio machine needs.
$(BENCH)/initramfs.img: $(BUILD)/abswitch-init initramfs/mkinitramfs $(BUILD)/deps.mk
	@mkdir -p $(BENCH)
	initramfs/mkinitramfs --init $(BUILD)/abswitch-init --kernel-root $(KERNEL_ROOT) \
	  --kver $(KERNEL_VERSION) --module virtio_pci --module virtio_blk --output $@

# make oci-image IMAGE=PREFIX UKI=boot.efi OCI=DIR [TAG=t] [OCI_VERSION=v]: an OS image as an
# OCI image layout (initramfs/mkoci; push it with skopeo copy oci:DIR:TAG docker://...).
oci-image:
	@test -n "$(IMAGE)" -a -n "$(UKI)" -a -n "$(OCI)" || { echo "make oci-image IMAGE=PREFIX UKI=boot.efi OCI=DIR [TAG=t] [OCI_VERSION=v]" >&2; exit 1; }
	initramfs/mkoci --image $(IMAGE) --uki $(UKI) --output $(OCI) $(if $(TAG),--tag $(TAG)) $(if $(OCI_VERSION),--version $(OCI_VERSION))

# make bench-oci [OCI_MIB=1024] [OCI_SCENARIO=all|throughput|delta]: abctl install from a registry
# against curl (in the guest), and full against delta installs of the Debian test system per
# image layout (host level) (bench/oci_bench.py).
OCI_MIB ?= 1024
OCI_SCENARIO ?= all
bench-oci: deps
	$(MAKE) e2e-artifacts $(PC)/abctl $(PC)/bootsim
	$(PYTHON) bench/oci_bench.py --build $(BUILD) --size-mib $(OCI_MIB) --scenario $(OCI_SCENARIO)

# What the initrd phase makes QEMU translate, abswitch against the floor (bench/tbprof.py).
tbprof: deps
	$(MAKE) e2e-artifacts $(BENCH)/floor $(BENCH)/cpumark $(BENCH)/initramfs.img
	$(PYTHON) bench/tbprof.py

bench: deps
	@command -v dracut >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	  --no-install-recommends dracut-core systemd udev dmsetup >/dev/null; }
	$(MAKE) e2e-artifacts $(BENCH)/floor $(BENCH)/cpumark $(BENCH)/initramfs.img
	$(PYTHON) bench/sizes.py $(BUILD)/abswitch-init.map $(BUILD)/abswitch-init --json $(BENCH)/init-sizes.json
	$(PYTHON) bench/bench.py --build $(BUILD) --boots $(if $(QUICK),1,$(BOOTS)) --pair-boots $(if $(QUICK),1,$(PAIR_BOOTS)) $(if $(VARIANTS),--variants $(VARIANTS)) \
	  --icount-boots $(if $(QUICK),1,$(ICOUNT_BOOTS))

clean:
	rm -rf $(BUILD)

# mk/vm.mk — the VM test tier, included by the top Makefile.
#
#   make vm-kernels              fetch Debian's 6.1 and 6.12 kernels into the
#                                cache (and install qemu, xz, zstd if missing)
#   make test-vm KERNEL=6.1      run the tests tagged `vm` in qemu on 6.1
#   make test-vm KERNEL=6.12     ... on 6.12
#   make test-vm                 both, one after the other
#   make test-vm KERNEL=6.1 VMTEST_ARGS='-v'   ... with the guest console
#
# Each test binary boots its own VM (cmd/vmtest as the go test -exec
# wrapper). Test binaries are built with CGO_ENABLED=0: the guest has no libc
# besides the libraries of the copied iproute2 binaries, so only a static
# binary is sure to run. The kernel cache lives outside the source tree
# (VMLINK_KERNEL_CACHE, default /var/cache/vmlink/kernels).

VM_KERNELS  ?= 6.1 6.12
VMTEST_DIR  ?= $(BIN)/vm
VMTEST      := $(VMTEST_DIR)/vmtest
VM_PKGS     ?= ./...
VM_GOFLAGS  ?= -count=1 -p 2
VMTEST_ARGS ?=
# The reference CNI plugins the cni package's VM tests compare against
# (Debian's containernetworking-plugins), copied into the guest when here.
VM_BINS     ?= $(wildcard $(addprefix /usr/lib/cni/,host-local static macvlan ipvlan vlan))

.PHONY: test-vm vm-kernels vm-tools

# vm-tools builds the runner and the guest init once per make run (go build
# is incremental); vmtest finds vmlink-init next to itself.
vm-tools:
	@mkdir -p $(VMTEST_DIR)
	@CGO_ENABLED=0 $(GO) build -trimpath -o $(VMTEST) ./cmd/vmtest
	@CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(VMTEST_DIR)/vmlink-init ./testenv/vm/init

vm-kernels: vm-tools
	@$(VMTEST) fetch -v $(VM_KERNELS)

ifeq ($(strip $(KERNEL)),)
test-vm:
	@rc=0; for k in $(VM_KERNELS); do $(MAKE) --no-print-directory test-vm KERNEL=$$k || rc=1; done; exit $$rc
else
# test-vm KERNEL=K: first one boot check (vmtest check: the kernel boots,
# the result channel works, the guest has every feature in VM_FEATURES);
# when it fails, the tier stops there with "VM boot failed on kernel K:"
# and the kernel's last console lines instead of failing every package the
# same way. Then the tests, one VM per test binary, -p 2 at a time; the
# closing line has the boot-to-test times and the tier's wall time.
VM_LOG := $(LOGDIR)/vm-$(KERNEL)
test-vm: vm-tools
	@mkdir -p $(LOGDIR)
	@rm -f $(VM_LOG).log $(VM_LOG).log.* $(VM_LOG).stats $(VM_LOG).notes $(VM_LOG).check $(VM_LOG).console
	@$(VMTEST) fetch $(KERNEL)
	@start=$$(date +%s); \
	if ! VMLINK_EXPECT_FEATURES=$(VM_FEATURES) $(VMTEST) check --kernel $(KERNEL) --console-log $(VM_LOG).console $(VMTEST_ARGS) 2>$(VM_LOG).check; then \
		cat $(VM_LOG).check; \
		msg=$$(grep -m1 -E '^VM (boot|check) failed' $(VM_LOG).check || head -1 $(VM_LOG).check); \
		scripts/run-tier.sh --note $(LOGDIR) vm-$(KERNEL) "$$msg (details: $(VM_LOG).check)"; \
		echo "== tier vm-$(KERNEL) FAILED: $$msg"; \
		exit 1; \
	fi; \
	cat $(VM_LOG).check; \
	scripts/run-tier.sh --note $(LOGDIR) vm-$(KERNEL) "$$(grep -m1 ' boots: ' $(VM_LOG).check)"; \
	touch $(VM_LOG).stats; \
	VMLINK_EXPECT_FEATURES=$(VM_FEATURES) VMLINK_VMTEST_STATS=$(abspath $(VM_LOG)).stats CGO_ENABLED=0 \
		scripts/run-tier.sh vm-$(KERNEL) $(VM_LOG).log \
		$(GO) test $(VM_GOFLAGS) -exec '$(abspath $(VMTEST)) --kernel $(KERNEL) $(VMTEST_ARGS) $(addprefix --bin ,$(VM_BINS)) --' -tags vm $(VM_PKGS); \
	rc=$$?; \
	line=$$(awk -v k=$(KERNEL) -v wall=$$(( $$(date +%s) - start )) ' \
		{ for (i = 1; i <= NF; i++) { split($$i, kv, "="); v[kv[1]] = kv[2] } \
		  n++; if (v["vmfail"] == 1) { fail++; failed = failed " " v["binary"] } else { b = v["boot"] + 0; sum += b; if (min == "" || b < min) min = b; if (b > max) max = b; ok++ } \
		  if (v["kernel"] != "") kv_ = v["kernel"]; delete v } \
		END { if (n == 0) { printf "vmtest: kernel %s: no VM runs (no test binaries?), VM tier time %ds\n", k, wall; exit } \
		  printf "vmtest: kernel %s (%s): %d VM runs, %d VM failures%s, boot-to-test min %.2fs avg %.2fs max %.2fs, VM tier time %ds\n", \
		    k, kv_, n, fail, (fail ? " (" substr(failed, 2) ": no result, see the log)" : ""), min, (ok ? sum / ok : 0), max, wall }' \
		$(VM_LOG).stats); \
	echo "$$line"; \
	scripts/run-tier.sh --note $(LOGDIR) vm-$(KERNEL) "$$line"; \
	exit $$rc
endif

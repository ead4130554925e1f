# mk/vm.mk — the VM test tier, included by the top Makefile.
#
#   make vm-kernels              fetch Debian's 6.1 and 6.12 kernels into the
#                                cache (and install qemu, xz, zstd if missing)
#   make test-vm KERNEL=6.1      run the tests tagged `vm` in qemu on 6.1
#   make test-vm KERNEL=6.12     ... on 6.12
#   make test-vm                 both, one after the other
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
test-vm: vm-tools
	@mkdir -p $(LOGDIR)
	@$(VMTEST) fetch $(KERNEL)
	@rm -f $(LOGDIR)/vm-$(KERNEL).stats; touch $(LOGDIR)/vm-$(KERNEL).stats
	@start=$$(date +%s); \
	VMLINK_VMTEST_STATS=$(abspath $(LOGDIR))/vm-$(KERNEL).stats CGO_ENABLED=0 \
		scripts/run-tier.sh vm-$(KERNEL) $(LOGDIR)/vm-$(KERNEL).log \
		$(GO) test $(VM_GOFLAGS) -exec '$(abspath $(VMTEST)) --kernel $(KERNEL) $(VMTEST_ARGS) --' -tags vm $(VM_PKGS); \
	rc=$$?; \
	awk -v k=$(KERNEL) -v wall=$$(( $$(date +%s) - start )) ' \
		{ for (i = 1; i <= NF; i++) { split($$i, kv, "="); v[kv[1]] = kv[2] } \
		  n++; if (v["vmfail"] == 1) fail++; else { b = v["boot"] + 0; sum += b; if (min == "" || b < min) min = b; if (b > max) max = b; ok++ } \
		  if (v["kernel"] != "") kv_ = v["kernel"]; delete v } \
		END { if (n == 0) { printf "vmtest: kernel %s: no VM runs (no test binaries?), tier wall time %ds\n", k, wall; exit } \
		  printf "vmtest: kernel %s (%s): %d VM runs, %d VM failures, boot-to-test min %.2fs avg %.2fs max %.2fs, tier wall time %ds\n", \
		    k, kv_, n, fail, min, (ok ? sum / ok : 0), max, wall }' \
		$(LOGDIR)/vm-$(KERNEL).stats; \
	exit $$rc
endif

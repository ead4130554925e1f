# vmlink — build, test tiers, lint and benchmarks.
#
# `make test` is the one command CI runs (.ci/run): it installs what the
# tiers need (Debian packages, the VM kernels) and runs every tier:
#   unit  — no privileges (`go test -short`)
#   priv  — privileged tests in throwaway namespaces on this machine's kernel
#   faults — vmlink killed and signalled at seeded random points, parallel
#           runs, bad state files; fails on any leak or panic
#   vm    — the privileged tier again inside qemu on Debian's 6.1 and 6.12
#           kernels, for what this kernel lacks (8021q, ipvlan, dummy)
#   runtime — real container runtimes (Debian's dockerd and Podman) in
#           sandbox namespaces: what they build, verified by vmlink

SHELL       := /bin/bash
GO          ?= go
export CGO_ENABLED := 0
BIN         ?= bin
LOGDIR      ?= $(BIN)/logs
# Debian packages the tiers use: strace/iproute2/tcpdump/tshark are the
# references the tests compare against, qemu boots the VM kernels; the
# runtime tier runs docker.io and podman (CNI plugins) with an image built
# from busybox-static.
APT_PKGS    := iproute2 iputils-ping bc strace tcpdump tshark qemu-system-x86 xz-utils cpio kmod \
               docker.io podman containernetworking-plugins busybox-static

.PHONY: all build test test-unit test-priv test-runtime test-faults deps lint bench-links bench-decode bench-verify bench-cni clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/vmlink ./cmd/vmlink
	@mkdir -p $(BIN)/cni
	$(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/cni/vmlink ./cmd/vmlink-cni

# deps installs the Debian packages the tests use, only when one is missing.
deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q $$missing >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; \
	fi

# What each tier's environment has, exported as VMLINK_EXPECT_FEATURES:
# with CI=true, testenv.Require fails a test whose feature is listed but
# missing, and skips (with the reason) one whose feature is not listed. The
# unit tier promises nothing. The host kernel has no 8021q, dummy, ipvlan
# or bridge vlan_filtering; the VM's guest has no tshark, strace or sysctl.
PRIV_FEATURES ?= privileged,macvlan,macvtap,veth,bridge,ip,tcpdump,tshark,strace
VM_FEATURES   ?= privileged,macvlan,macvtap,veth,bridge,bridge_vlan,vlan,ipvlan,dummy,ip,tcpdump
RUNTIME_FEATURES ?= $(PRIV_FEATURES),docker,podman
# The runtime tier's tests carry the build tag runtime and are named
# TestRuntime*; the other tiers never build them.
RUNTIME_PKGS  ?= ./testenv/runtime/ ./cmd/vmlink/ ./cni/

# test runs every tier even when one fails, so one run shows everything,
# then the summary: per tier "N passed, N failed, N skipped", the VM boot
# times, every skip with its reason (CI=true), and fails if any tier did.
test: deps vm-kernels
	@rm -rf $(LOGDIR); mkdir -p $(LOGDIR)
	@start=$$(date +%s); rc=0; \
	$(MAKE) --no-print-directory test-unit || rc=1; \
	$(MAKE) --no-print-directory test-priv || rc=1; \
	$(MAKE) --no-print-directory test-faults || rc=1; \
	$(MAKE) --no-print-directory test-runtime || rc=1; \
	for k in $(VM_KERNELS); do $(MAKE) --no-print-directory test-vm KERNEL=$$k || rc=1; done; \
	scripts/run-tier.sh --summary $(LOGDIR) $$(( $$(date +%s) - start )) || rc=1; \
	exit $$rc

test-unit:
	@mkdir -p $(LOGDIR)
	@VMLINK_EXPECT_FEATURES= scripts/run-tier.sh unit $(LOGDIR)/unit.log $(GO) test -short -count=1 ./...

test-priv: deps
	@mkdir -p $(LOGDIR)
	@VMLINK_EXPECT_FEATURES=$(PRIV_FEATURES) scripts/run-tier.sh priv $(LOGDIR)/priv.log $(GO) test -count=1 -p 1 ./...

test-runtime: deps
	@mkdir -p $(LOGDIR)
	@VMLINK_EXPECT_FEATURES=$(RUNTIME_FEATURES) scripts/run-tier.sh runtime $(LOGDIR)/runtime.log $(GO) test -tags runtime -count=1 -p 1 -run '^TestRuntime' $(RUNTIME_PKGS)

# test-faults kills and signals vmlink at seeded random points (30 runs per
# kill scenario), runs parallel operations and feeds it bad state files, all
# in throwaway namespaces with a private state directory, and fails on any
# leak or panic (cmd/vmlink/faults_test.go). About 2 minutes on 2 cores.
# VMLINK_FAULT_SEED=N repeats a run's kill points; VMLINK_FAULT_RUNS=N
# changes the number of runs.
test-faults: deps
	@mkdir -p $(LOGDIR)
	@VMLINK_EXPECT_FEATURES=$(PRIV_FEATURES) scripts/run-tier.sh faults $(LOGDIR)/faults.log $(GO) test -tags faults -count=1 -p 1 -timeout 15m -run '^TestFaults$$' ./cmd/vmlink/

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

STATICCHECK_VERSION ?= v0.8.2

bench-links: build
	scripts/bench-links.sh

bench-decode: build
	scripts/bench-decode.sh

bench-verify: build
	scripts/bench-verify.sh

bench-cni: build
	scripts/bench-cni.sh

clean:
	rm -rf $(BIN)

-include mk/vm.mk

# weir — build and test entry points.
#   make test   the README's test command: installs what is missing, builds, runs every tier
#   make demo   the README's main command: the lab (2 nodes, the seeds' guestbook, every check)
SHELL := /bin/bash
.DEFAULT_GOAL := build

ARCH        := $(shell uname -m)
CLANG       ?= clang
# -mcpu=v3: 32-bit subregisters and jmp32 (kernel >= 5.1) for tighter code, and
# value-returning atomics that clang 14 cannot lower for the v1 default.
# -fdebug-prefix-map: objects do not depend on where the checkout lives.
BPF_CFLAGS  := -O2 -g -target bpf -mcpu=v3 -Wall -Werror -Wno-unused-function \
               -fdebug-prefix-map=$(CURDIR)=. \
               -I/usr/include/$(ARCH)-linux-gnu -Ibpf/include
BUILD       := build

BPF_SRCS     := $(wildcard bpf/*.c)
BPF_OBJS     := $(patsubst bpf/%.c,$(BUILD)/bpf/%.o,$(BPF_SRCS))
FIXTURE_SRCS := $(wildcard test/fixtures/*.c)
FIXTURE_OBJS := $(patsubst test/fixtures/%.c,$(BUILD)/fixtures/%.o,$(FIXTURE_SRCS))
BPF_HEADERS  := $(wildcard bpf/include/*.h)
ADDON        := native/build/Release/weir_native.node
NATIVE_SRCS  := $(wildcard native/src/*.cc native/src/*.h) native/binding.gyp

.PHONY: build deps bpf fixtures native typecheck test test-only bpffs clean demo types bench

build: bpf fixtures native dist

## deps: apt packages and npm modules; each step is skipped when already present.
deps:
	@./scripts/deps.sh

bpf: $(BPF_OBJS)
fixtures: $(FIXTURE_OBJS)

$(BUILD)/bpf/%.o: bpf/%.c $(BPF_HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/fixtures/%.o: test/fixtures/%.c $(wildcard test/fixtures/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# node-gyp must build against the installed Node's headers: the only network
# here is the package registries, so it cannot download them from nodejs.org.
NODEDIR ?= $(shell node -p 'require("path").resolve(process.execPath, "../..")')
native: $(ADDON)
$(ADDON): $(NATIVE_SRCS)
	@test -f $(NODEDIR)/include/node/node_api.h || { echo "Node headers not found under $(NODEDIR)/include/node (set NODEDIR=...)"; exit 1; }
	npx --no-install node-gyp rebuild --directory native --nodedir=$(NODEDIR)

dist: $(shell find control loader native -name '*.ts' -not -name '*.test.ts' 2>/dev/null) tsconfig.json tsconfig.build.json
	npx --no-install tsc -p tsconfig.build.json
	@touch dist

## types: control/datapath/types.gen.ts from the map contract (commit the result).
types: $(BUILD)/bpf/contract.o dist
	./scripts/gen-types.sh

typecheck:
	npx --no-install tsc -p tsconfig.json --noEmit

bpffs:
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

## test: everything a fresh Debian 12 machine needs, then every tier.
test: deps
	@$(MAKE) --no-print-directory bpffs build typecheck
	@$(MAKE) --no-print-directory test-only

test-only:
	npx --no-install vitest run

## demo: installs what is missing, builds, and runs the lab demo (root).
demo: deps
	@$(MAKE) --no-print-directory bpffs build
	./bin/weir lab demo

## bench: weir vs kube-proxy iptables/nftables (root, ~15 min; ARGS=--quick|--full|...).
bench: deps
	@$(MAKE) --no-print-directory bpffs bpf native
	@$(MAKE) --no-print-directory -C bench run ARGS="$(ARGS)"

clean:
	rm -rf $(BUILD) native/build dist dist-bench

#!/usr/bin/env bash
# Regenerates control/datapath/types.gen.ts from build/bpf/contract.o: every
# struct and enum bpf/contract.c names. Run after changing bpf/include/structs.h
# or constants.h (`make types`); a test fails while the file is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t types < <(sed -nE 's/^\s+((struct|enum) [a-z0-9_]+) [a-z0-9_]+;$/\1/p' bpf/contract.c)
./bin/weir gen-types build/bpf/contract.o "${types[@]}" --out control/datapath/types.gen.ts

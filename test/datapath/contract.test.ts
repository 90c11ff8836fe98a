// The map contract: the committed TypeScript side matches the C structs, and
// network-order fields read as host-order numbers.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { codecFor, generateTypes, loadCollectionSpec } from '../../loader/index.js';
import { contractBtf, typedMaps } from '../../control/datapath/maps.js';
import { bpfObject } from '../../control/paths.js';
import { repoRoot } from '../lib/fixtures.js';

describe('map contract', () => {
  it('types.gen.ts is current with bpf/include (run `make types` after changing the structs)', () => {
    const src = readFileSync(join(repoRoot, 'bpf', 'contract.c'), 'utf8');
    const names = [...src.matchAll(/^\s+((?:struct|enum) [a-z0-9_]+) [a-z0-9_]+;$/gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(20);
    const fresh = generateTypes(contractBtf(), names, { source: 'build/bpf/contract.o' });
    const committed = readFileSync(join(repoRoot, 'control', 'datapath', 'types.gen.ts'), 'utf8');
    expect(committed).toBe(fresh);
  });

  it('reads __be16/__be32 fields as host-order numbers and writes network order', () => {
    const key = codecFor(contractBtf(), 'struct svc4_key');
    const bytes = key.encode({ addr: 0x0a600001, port: 80, proto: 6, scope: 0 });
    expect([...bytes]).toEqual([10, 96, 0, 1, 0, 80, 6, 0]);
    expect(key.decode(bytes)).toEqual({ addr: 0x0a600001, port: 80, proto: 6, scope: 0 });
  });

  it('every program object carries the same layouts as the contract', () => {
    for (const obj of ['pod', 'uplink']) {
      const btf = loadCollectionSpec(bpfObject(obj)).btf!;
      // Opening typed views checks every key/value layout of every map against this object's BTF.
      const views = typedMaps(() => ({ close() {} }) as never, btf);
      expect(views.svc4.key.size).toBe(8);
    }
  });
});

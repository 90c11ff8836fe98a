// The whole spec layer (ELF → BTF → maps → programs → linking) on mutated
// fixtures: every case either parses or throws a LoaderError it anticipated;
// never another exception, never the catch-all, never a hang.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LoaderError, parseCollectionSpec } from '../../loader/index.js';
import { fixture } from '../lib/fixtures.js';
import { mutations } from './parse/mutate.js';

const OBJECTS = ['maps', 'sections', 'reject', 'pin_v1', 'core', 'calls', 'static_maps', 'upgrade', 'layout_v1'];
const PER_OBJECT = 1000;

describe('collection spec fuzzing', () => {
  it(`${OBJECTS.length * PER_OBJECT} mutated objects: a spec or an anticipated LoaderError`, () => {
    let parsed = 0;
    let rejected = 0;
    const unexpected: string[] = [];
    OBJECTS.forEach((name, i) => {
      const buf = readFileSync(fixture(name));
      for (const m of mutations(buf, 0x5eed + i, PER_OBJECT)) {
        try {
          const spec = parseCollectionSpec(m, `${name}.o`);
          // Touch what a caller would: every program and map spec.
          for (const p of Object.values(spec.programs)) expect(p.instructions.length % 8).toBe(0);
          for (const ms of Object.values(spec.maps)) expect(ms.name.length).toBeGreaterThan(0);
          parsed++;
        } catch (e) {
          if (!(e instanceof LoaderError)) unexpected.push(`${name}: ${(e as Error).stack}`);
          else if (/malformed BPF object \(|unexpected parse failure/.test(e.message)) unexpected.push(`${name}: ${e.message}`);
          else rejected++;
        }
      }
    });
    console.log(`collection fuzz: ${parsed} parsed, ${rejected} rejected`);
    expect(unexpected.slice(0, 5)).toEqual([]);
    expect(rejected).toBeGreaterThan(0);
    expect(parsed).toBeGreaterThan(0);
  });
});

// Every section kind the loader maps must load in the kernel with the type,
// expected attach type and flags we derive from its name.
import { describe, expect, it } from 'vitest';
import { loadCollectionSpec } from '../../loader/index.js';
import { fixture } from '../lib/fixtures.js';
import { requireRoot } from '../lib/netns.js';

const skip = requireRoot('loading every section kind');

describe.skipIf(skip)('sections.o in the kernel', () => {
  it('loads one program of each section kind', async () => {
    const spec = loadCollectionSpec(fixture('sections'));
    const c = await spec.load();
    try {
      for (const [name, p] of Object.entries(spec.programs)) {
        expect(c.programs[name].info, name).toMatchObject({ name: name.slice(0, 15), type: p.type });
      }
      expect(Object.keys(c.programs)).toHaveLength(12);
    } finally {
      c.close();
    }
  });
});

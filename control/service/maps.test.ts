import { describe, expect, it } from 'vitest';
import { loadCollectionSpec } from '../../loader/index.js';
import { bpfObject } from '../paths.js';
import { MAGLEV_M_LARGE } from './maglev.js';
import { configureMaglev } from './maps.js';

describe('configureMaglev', () => {
  it('sets the inner template size and the MAGLEV_M constant', () => {
    const spec = loadCollectionSpec(bpfObject('pod'));
    configureMaglev(spec, MAGLEV_M_LARGE);
    expect(spec.maps['weir_maglev'].inner!.maxEntries).toBe(MAGLEV_M_LARGE);
    const v = spec.variables['MAGLEV_M'];
    const data = spec.maps[v.section].contents[0].value as Buffer;
    expect(data.readUInt32LE(v.offset)).toBe(MAGLEV_M_LARGE);
  });

  it('refuses a size that is not a prime, changing nothing', () => {
    const spec = loadCollectionSpec(bpfObject('pod'));
    expect(() => configureMaglev(spec, 65536)).toThrow(/65536 is not a prime/);
    expect(spec.maps['weir_maglev'].inner!.maxEntries).toBe(16381);
  });
});

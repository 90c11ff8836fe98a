// A program the verifier must reject: the error carries the verifier's
// complaint and the C source line it points at (from BTF line info).
import { describe, expect, it } from 'vitest';
import { LoaderError, loadCollectionSpec } from '../../loader/index.js';
import { fixture } from '../lib/fixtures.js';
import { requireRoot } from '../lib/netns.js';

const skip = requireRoot('loading BPF programs');

describe.skipIf(skip)('verifier rejection', () => {
  it('names the program, the complaint and the offending source line', async () => {
    const spec = loadCollectionSpec(fixture('reject'));
    const err = await spec.load().then(
      (c) => {
        c.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LoaderError);
    const msg = (err as Error).message;
    // First line: program, complaint and source location, for a person to act on.
    expect(msg.split('\n')[0]).toMatch(/program xdp_null_deref \(section xdp\): R0 invalid mem access 'map_value_or_null' at reject\.c:19$/);
    // The kernel's words for a dereference of a maybe-NULL map value.
    expect(msg).toMatch(/invalid mem access 'map_value_or_null'/);
    // The source line, from line_info, as the kernel prints it.
    expect(msg).toMatch(/return \*v == 42 \? XDP_DROP : XDP_PASS; \/\* WEIR_REJECT_LINE \*\//);
    expect((err as { log?: string }).log).toMatch(/invalid mem access/);
  });
});

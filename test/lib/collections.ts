// Fixture collections for program tests: loaded on demand, closed after each
// test, and (with a pin root) the pin directory made and removed.
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { Collection, LoadOptions, loadCollectionSpec } from '../../loader/index.js';
import { fixture } from './fixtures.js';

/** Call inside a describe(); registers the hooks that clean up. */
export function fixtureCollections(pinRoot?: string) {
  const open: Collection[] = [];
  if (pinRoot) {
    beforeAll(() => mkdirSync(pinRoot, { recursive: true }));
    afterAll(() => rmSync(pinRoot, { recursive: true, force: true }));
  }
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  return {
    /** Loads build/fixtures/NAME.o (with the pin root) and closes it after the test. */
    async load(name: string, opts: LoadOptions = {}): Promise<Collection> {
      return this.keep(await loadCollectionSpec(fixture(name)).load({ pinRoot, ...opts }));
    },
    /** Closes a collection loaded some other way after the test. */
    keep(c: Collection): Collection {
      open.push(c);
      return c;
    },
  };
}

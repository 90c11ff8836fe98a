/**
 * Errors raised by the object-file loader.
 *
 * Every problem with an object file (malformed ELF, BTF, BTF.ext, or an
 * object the loader cannot handle) surfaces as a LoaderError whose message
 * names the file (when known), the section/symbol/type involved and what is
 * wrong with it.
 */
export class LoaderError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts?.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'LoaderError';
  }
}

/**
 * Run `fn`; any error that is not already a LoaderError (e.g. a RangeError
 * from a Buffer read that slipped past the explicit bounds checks) is
 * wrapped so callers only ever see LoaderError. The parsers check bounds
 * explicitly; this is a safety net, and its message is recognisable
 * ("unexpected parse failure") so tests can assert it never fires.
 */
export function guardParse<T>(what: string, source: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LoaderError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    throw new LoaderError(`${source}: unexpected parse failure in ${what}: ${msg}`, { cause: e });
  }
}

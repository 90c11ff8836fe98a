// Short stable hashes for generated names, in the alphabet Kubernetes uses for them (no vowels, no 0/1/3).

const SAFE = 'bcdfghjklmnpqrstvwxz2456789';

/** FNV-1a, 32 bit. */
export function fnv32a(text: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(text, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** JSON with object keys sorted, so equal objects hash equal whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as any)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson((v as any)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Like the pod-template-hash label: the decimal FNV hash spelt in the safe alphabet. */
export function safeHash(v: unknown): string {
  const text = typeof v === 'string' ? v : canonicalJson(v);
  return String(fnv32a(text)).split('').map((d) => SAFE[Number(d)]).join('');
}

/** Five safe characters, as in generateName suffixes (deterministic for a given input). */
export function shortHash(v: unknown): string {
  let n = fnv32a(typeof v === 'string' ? v : canonicalJson(v));
  let s = '';
  for (let i = 0; i < 5; i++) {
    s += SAFE[n % SAFE.length];
    n = Math.floor(n / SAFE.length);
  }
  return s;
}

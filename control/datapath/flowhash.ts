// The datapath's Maglev flow hash (bpf/include/lb_select.h, lb_flow_hash)
// over host-order numbers: `weir trace` and the tests use it to say which
// Maglev table slot a tuple lands on.
const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = rotl(k, 15);
  k = Math.imul(k, 0x1b873593);
  h = (h ^ k) >>> 0;
  h = rotl(h, 13);
  return (Math.imul(h, 5) + 0xe6546b64) >>> 0;
}
export function flowHash(saddr: number, daddr: number, sport: number, dport: number, proto: number): number {
  let h = (0x9747b28c ^ proto) >>> 0;
  h = mix(h, saddr >>> 0);
  h = mix(h, daddr >>> 0);
  h = mix(h, ((sport << 16) | dport) >>> 0);
  h = (h ^ 12) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

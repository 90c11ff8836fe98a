// The chain-name hashes kube-proxy uses (pkg/proxy/iptables and nftables
// proxier.go): sha256 of a name, RFC 4648 base32 (Go's StdEncoding), truncated.
import { createHash } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Go's base32.StdEncoding without the padding (kube-proxy only keeps a prefix). */
export function base32(buf: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of buf) {
    value = ((value << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

export const sha256Base32 = (s: string): string => base32(createHash('sha256').update(s).digest());

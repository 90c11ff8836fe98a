// ClusterIP and nodePort allocation, as the real API server's allocators: a low static band
// kept for explicit requests, dynamic allocations from above it first.

export function ipToNumber(ip: string): number | undefined {
  const m = ip.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255) || m.slice(1).some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
  return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

export function numberToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  text: string;
  base: number;
  size: number;
}

export function parseCidr(text: string): Cidr {
  const [ip, bits] = text.split('/');
  const base = ipToNumber(ip);
  const prefix = Number(bits);
  if (base === undefined || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) {
    throw new Error(`invalid service CIDR ${JSON.stringify(text)}: want an IPv4 a.b.c.d/N with 8 <= N <= 30`);
  }
  const size = 2 ** (32 - prefix);
  return { text, base: base - (base % size), size };
}

class Band {
  private used = new Set<number>();
  private cursor = 0;
  constructor(
    readonly first: number,
    readonly count: number,
    private readonly staticCount: number,
  ) {}

  has(n: number): boolean {
    return this.used.has(n);
  }
  inRange(n: number): boolean {
    return n >= this.first && n < this.first + this.count;
  }
  take(n: number): void {
    this.used.add(n);
  }
  release(n: number): void {
    this.used.delete(n);
  }
  /** The next free value, dynamic band first (so explicit low picks rarely collide), then the static band. */
  next(): number | undefined {
    const dynamic = this.count - this.staticCount;
    for (let i = 0; i < dynamic; i++) {
      const n = this.first + this.staticCount + ((this.cursor + i) % dynamic);
      if (!this.used.has(n)) {
        this.cursor = (this.cursor + i + 1) % dynamic;
        return n;
      }
    }
    for (let i = 0; i < this.staticCount; i++) if (!this.used.has(this.first + i)) return this.first + i;
    return undefined;
  }
}

export class ClusterIpAllocator {
  readonly cidr: Cidr;
  private band: Band;
  constructor(cidr: string) {
    this.cidr = parseCidr(cidr);
    // Usable: network+1 .. broadcast-1. Static band size as the API server: min(max(16, size/16), 256).
    const usable = this.cidr.size - 2;
    const staticCount = Math.min(Math.max(16, Math.floor(this.cidr.size / 16)), 256, usable);
    this.band = new Band(this.cidr.base + 1, usable, staticCount);
  }
  /** The first usable address, kept for the `kubernetes` service (10.96.0.1 by default). */
  get first(): string {
    return numberToIp(this.cidr.base + 1);
  }
  inRange(ip: string): boolean {
    const n = ipToNumber(ip);
    return n !== undefined && this.band.inRange(n);
  }
  isAllocated(ip: string): boolean {
    const n = ipToNumber(ip);
    return n !== undefined && this.band.has(n);
  }
  allocate(ip: string): void {
    this.band.take(ipToNumber(ip)!);
  }
  allocateNext(): string | undefined {
    const n = this.band.next();
    if (n === undefined) return undefined;
    this.band.take(n);
    return numberToIp(n);
  }
  release(ip: string): void {
    const n = ipToNumber(ip);
    if (n !== undefined) this.band.release(n);
  }
}

/** Node ports are unique per protocol, as in the real allocator. */
export class NodePortAllocator {
  private bands = new Map<string, Band>();
  constructor(
    readonly min: number,
    readonly max: number,
  ) {
    if (!(Number.isInteger(min) && Number.isInteger(max) && min >= 1 && max <= 65535 && min <= max)) {
      throw new Error(`invalid nodePort range ${min}-${max}`);
    }
  }
  private bandFor(protocol: string): Band {
    let b = this.bands.get(protocol);
    if (!b) {
      const count = this.max - this.min + 1;
      // Static band as the API server: min(max(16, size/32), 128).
      const staticCount = Math.min(Math.max(16, Math.floor(count / 32)), 128, count);
      b = new Band(this.min, count, staticCount);
      this.bands.set(protocol, b);
    }
    return b;
  }
  get rangeText(): string {
    return `${this.min}-${this.max}`;
  }
  inRange(port: number): boolean {
    return port >= this.min && port <= this.max;
  }
  isAllocated(port: number, protocol: string): boolean {
    return this.bandFor(protocol).has(port);
  }
  allocate(port: number, protocol: string): void {
    this.bandFor(protocol).take(port);
  }
  allocateNext(protocol: string): number | undefined {
    const b = this.bandFor(protocol);
    const n = b.next();
    if (n !== undefined) b.take(n);
    return n;
  }
  release(port: number, protocol: string): void {
    this.bandFor(protocol).release(port);
  }
}

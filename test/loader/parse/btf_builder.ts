// A tiny raw-BTF writer for tests: builds .BTF blobs by hand, including
// deliberately broken ones.

export const KIND = {
  INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11,
  FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19,
} as const;

export class BtfBuilder {
  private strs: string[] = [''];
  private strOffs = new Map<string, number>([['', 0]]);
  private strLen = 1;
  private recs: Buffer[] = [];

  str(s: string): number {
    let off = this.strOffs.get(s);
    if (off === undefined) {
      off = this.strLen;
      this.strOffs.set(s, off);
      this.strs.push(s);
      this.strLen += Buffer.byteLength(s) + 1;
    }
    return off;
  }

  /** Append a record; returns its type id. `extra` are trailing u32 words. */
  add(kind: number, name: string, opts: { vlen?: number; kflag?: boolean; sizeOrType?: number; extra?: number[] } = {}): number {
    const extra = opts.extra ?? [];
    const b = Buffer.alloc(12 + extra.length * 4);
    b.writeUInt32LE(this.str(name), 0);
    b.writeUInt32LE((((opts.kflag ? 1 : 0) << 31) | (kind << 24) | (opts.vlen ?? 0)) >>> 0, 4);
    b.writeUInt32LE((opts.sizeOrType ?? 0) >>> 0, 8);
    extra.forEach((w, i) => b.writeUInt32LE(w >>> 0, 12 + i * 4));
    this.recs.push(b);
    return this.recs.length;
  }

  int(name: string, size: number, bits = size * 8, encoding = 0): number {
    return this.add(KIND.INT, name, { sizeOrType: size, extra: [(encoding << 24) | bits] });
  }

  ref(kind: number, name: string, type: number): number {
    return this.add(kind, name, { sizeOrType: type });
  }

  struct(name: string, size: number, members: [string, number, number][], kind: number = KIND.STRUCT): number {
    const extra: number[] = [];
    for (const [n, t, off] of members) extra.push(this.str(n), t, off);
    return this.add(kind, name, { vlen: members.length, sizeOrType: size, extra });
  }

  build(): Buffer {
    const types = Buffer.concat(this.recs);
    const strs = Buffer.concat(this.strs.map((s) => Buffer.from(`${s}\0`)));
    const hdr = Buffer.alloc(24);
    hdr.writeUInt16LE(0xeb9f, 0);
    hdr[2] = 1;
    hdr.writeUInt32LE(24, 4);
    hdr.writeUInt32LE(0, 8);
    hdr.writeUInt32LE(types.length, 12);
    hdr.writeUInt32LE(types.length, 16);
    hdr.writeUInt32LE(strs.length, 20);
    return Buffer.concat([hdr, types, strs]);
  }
}

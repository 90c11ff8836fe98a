// BpfMap.mmap(): the values of a BPF_F_MMAPABLE array shared between this
// process, the kernel's map syscalls and BPF programs; clear errors for maps
// that cannot be mapped; a Buffer that never dangles after close() or GC (root).
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfError, BpfMap, BpfProgram, MapFlags, MapType, ProgType } from '../../native/index.js';
import { R0, R1, R2, R10, asm, fdTracker, prog, requireKernel, u32, udpFrame } from './helpers.js';

const enabled = requireKernel();
const gc = (globalThis as { gc?: () => void }).gc;
const { track, closeAll } = fdTracker();

const PAGE = 4096;

function mmapable(maxEntries: number, valueSize = 4, name = 'h10_mm'): BpfMap {
  return track(BpfMap.create({ type: MapType.ARRAY, name, keySize: 4, valueSize, maxEntries, flags: MapFlags.MMAPABLE }));
}

/** r2 = fp + off after storing `key` there (a u32 key on the stack). */
const keyOnStack = (off: number, key: number) => [asm.stW(R10, off, key), asm.mov64Reg(R2, R10), asm.add64Imm(R2, off)];

/** tc program: returns the u32 at `slot` of `map` (-1 when the lookup fails). */
function readSlotProg(mapFd: number, slot: number): Buffer {
  return prog(
    asm.ldMapFd(R1, mapFd),
    ...keyOnStack(-4, slot),
    asm.call(1), // bpf_map_lookup_elem
    asm.jeqImm(R0, 0, 2),
    asm.ldxW(R0, R0, 0),
    asm.exit(),
    asm.mov64Imm(R0, -1),
    asm.exit(),
  );
}

/** tc program: *(u32 *)value[slot] = v; returns 0 (-1 when the lookup fails). */
function writeSlotProg(mapFd: number, slot: number, v: number): Buffer {
  return prog(
    asm.ldMapFd(R1, mapFd),
    ...keyOnStack(-4, slot),
    asm.call(1),
    asm.jeqImm(R0, 0, 3),
    asm.stW(R0, 0, v),
    asm.mov64Imm(R0, 0),
    asm.exit(),
    asm.mov64Imm(R0, -1),
    asm.exit(),
  );
}

/** tc program: outer[key] → inner[slot] as u32 (-1 when either lookup fails): the Maglev lookup. */
function readInnerProg(outerFd: number, key: number, slot: number): Buffer {
  return prog(
    asm.ldMapFd(R1, outerFd),
    ...keyOnStack(-4, key),
    asm.call(1),
    asm.jeqImm(R0, 0, 8),
    asm.mov64Reg(R1, R0),
    ...keyOnStack(-8, slot),
    asm.call(1),
    asm.jeqImm(R0, 0, 2),
    asm.ldxW(R0, R0, 0),
    asm.exit(),
    asm.mov64Imm(R0, -1),
    asm.exit(),
  );
}

async function run(insns: Buffer): Promise<number> {
  const p = track(await BpfProgram.load({ type: ProgType.SCHED_CLS, license: 'GPL', insns, name: 'h10_mm' }));
  try {
    return (await p.testRun({ data: udpFrame() })).retval;
  } finally {
    p.close();
  }
}

/** How many of this process's mappings are BPF maps (from /proc/self/maps). */
const bpfMappings = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('bpf-map')).length;

function bpfError(fn: () => unknown): BpfError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfError);
    return e as BpfError;
  }
  throw new Error('expected a BpfError');
}

describe.skipIf(!enabled)('BpfMap.mmap', () => {
  afterAll(() => {
    closeAll();
  });

  it('lays values out at roundup(valueSize, 8), page-rounded, shared with lookup/update both ways', () => {
    const m = mmapable(1000);
    const mm = m.mmap();
    try {
      expect(mm.stride).toBe(8);
      expect(mm.entries).toBe(1000);
      expect(mm.buffer.length).toBe(2 * PAGE); // 8000 bytes → two pages
      expect(mm.buffer.every((b) => b === 0)).toBe(true);

      mm.buffer.writeUInt32LE(0xdeadbeef, 5 * 8);
      expect(m.lookup(u32(5))!.readUInt32LE(0)).toBe(0xdeadbeef);
      mm.value(999).writeUInt32LE(77);
      expect(m.lookup(u32(999))!.readUInt32LE(0)).toBe(77);

      m.update(u32(7), u32(42));
      expect(mm.buffer.readUInt32LE(7 * 8)).toBe(42);
      expect(mm.value(7).readUInt32LE(0)).toBe(42);
      expect(mm.value(7).length).toBe(4);
      expect(() => mm.value(1000)).toThrow(RangeError);

      // A whole table in one pass, as PinnedMaglev fills its inner maps.
      const table = Uint32Array.from({ length: 1000 }, (_, i) => (i * 2654435761) >>> 0);
      const words = new Uint32Array(mm.buffer.buffer, mm.buffer.byteOffset, mm.buffer.length / 4);
      table.forEach((v, i) => (words[i * 2] = v));
      for (const i of [0, 1, 500, 998, 999]) expect(m.lookup(u32(i))!.readUInt32LE(0)).toBe(table[i]);
    } finally {
      mm.close();
    }
  });

  it('strides larger values to 8-byte multiples', () => {
    const m = mmapable(100, 12, 'h10_mm12');
    const mm = m.mmap();
    try {
      expect(mm.stride).toBe(16);
      expect(mm.buffer.length).toBe(PAGE);
      const v = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      v.copy(mm.buffer, 3 * 16);
      expect(m.lookup(u32(3))).toEqual(v);
      expect(mm.value(3)).toEqual(v);
    } finally {
      mm.close();
    }
  });

  it('BPF programs see values written through the mapping, and the mapping sees theirs', async () => {
    const m = mmapable(64);
    const mm = m.mmap();
    try {
      mm.value(9).writeUInt32LE(1234567);
      expect(await run(readSlotProg(m.fd, 9))).toBe(1234567);
      mm.value(9).writeUInt32LE(7);
      expect(await run(readSlotProg(m.fd, 9))).toBe(7);

      expect(await run(writeSlotProg(m.fd, 11, 4242))).toBe(0);
      expect(mm.value(11).readUInt32LE(0)).toBe(4242);
    } finally {
      mm.close();
    }
  });

  it('mmap-able inner maps work in a HASH_OF_MAPS whose template has the flag; others are refused', async () => {
    const template = mmapable(128, 4, 'h10_tmpl');
    const outer = track(
      BpfMap.create({ type: MapType.HASH_OF_MAPS, name: 'h10_outer', keySize: 4, valueSize: 4, maxEntries: 8, innerMapFd: template.fd }),
    );
    const inner = mmapable(128, 4, 'h10_inner');
    const mm = inner.mmap();
    try {
      mm.value(100).writeUInt32LE(31337);
      outer.update(u32(3), u32(inner.fd));
      expect(await run(readInnerProg(outer.fd, 3, 100))).toBe(31337);
      expect(await run(readInnerProg(outer.fd, 5, 100))).toBe(-1); // no such key

      // The kernel compares inner maps with the template, flags included.
      const plain = track(BpfMap.create({ type: MapType.ARRAY, name: 'h10_plain', keySize: 4, valueSize: 4, maxEntries: 128 }));
      expect(bpfError(() => outer.update(u32(4), u32(plain.fd))).code).toBe('EINVAL');
    } finally {
      mm.close();
    }
  });

  it('maps that cannot be mapped fail with a clear error naming the map', () => {
    const plain = track(BpfMap.create({ type: MapType.ARRAY, name: 'h10_nommap', keySize: 4, valueSize: 4, maxEntries: 4 }));
    const e1 = bpfError(() => plain.mmap());
    expect(e1.code).toBe('EINVAL');
    expect(e1.message).toMatch(/h10_nommap.*without BPF_F_MMAPABLE.*MapFlags\.MMAPABLE/);

    const hash = track(BpfMap.create({ type: MapType.HASH, name: 'h10_hash', keySize: 4, valueSize: 4, maxEntries: 4 }));
    expect(bpfError(() => hash.mmap()).message).toMatch(/h10_hash.*HASH \(not an ARRAY\)/);

    // Mappings are read-write only, so a frozen map cannot be mapped.
    const frozen = mmapable(4, 4, 'h10_frozen');
    frozen.freeze();
    const e3 = bpfError(() => frozen.mmap());
    expect(e3.code).toBe('EPERM');
    expect(e3.message).toMatch(/h10_frozen.*frozen/);

    // A live writable mapping blocks freezing.
    const busy = mmapable(4, 4, 'h10_busy');
    const mm = busy.mmap();
    expect(bpfError(() => busy.freeze()).message).toMatch(/writable mapping/);
    mm.close();
    busy.freeze();

    const closed = mmapable(4, 4, 'h10_closed');
    closed.close();
    expect(bpfError(() => closed.mmap()).code).toBe('EBADF');
  });

  it('after close() the buffer is detached, never dangling: reads zeros, writes do not reach the map', () => {
    const m = mmapable(16);
    const mm = m.mmap();
    mm.value(1).writeUInt32LE(99);
    const before = bpfMappings();
    mm.close();
    expect(mm.closed).toBe(true);
    expect(bpfMappings()).toBe(before - 1);
    expect(mm.buffer.readUInt32LE(8)).toBe(0);
    mm.buffer.writeUInt32LE(5, 8);
    expect(m.lookup(u32(1))!.readUInt32LE(0)).toBe(99);
    expect(() => mm.value(1)).toThrow(/closed/);
    mm.close(); // idempotent
  });

  it('closing the map releases its mappings, so the kernel map is freed at once', () => {
    const m = BpfMap.create({ type: MapType.ARRAY, name: 'h10_gone', keySize: 4, valueSize: 4, maxEntries: 16, flags: MapFlags.MMAPABLE });
    const id = m.info.id;
    const a = m.mmap();
    const b = m.mmap();
    a.value(0).writeUInt32LE(1);
    m.close();
    expect(a.closed && b.closed).toBe(true);
    expect(a.buffer.readUInt32LE(0)).toBe(0);
    b.buffer.writeUInt32LE(1, 0);
    // No mapping holds the map any more: its id is gone.
    expect(bpfError(() => BpfMap.fromId(id)).code).toBe('ENOENT');
    a.close();
    b.close();
  });

  it.skipIf(!gc)('a mapping dropped without close() is unmapped when its Buffer is collected', async () => {
    const before = bpfMappings();
    const id = (() => {
      const m = BpfMap.create({ type: MapType.ARRAY, name: 'h10_leak', keySize: 4, valueSize: 4, maxEntries: 4096, flags: MapFlags.MMAPABLE });
      m.mmap().value(0).writeUInt32LE(1);
      return m.info.id;
    })();
    expect(bpfMappings()).toBe(before + 1);
    for (let round = 0; round < 50 && bpfMappings() > before; round++) {
      gc!();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(bpfMappings()).toBe(before);
    for (let round = 0; round < 50; round++) {
      try {
        BpfMap.fromId(id).close();
      } catch {
        break;
      }
      gc!();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(bpfError(() => BpfMap.fromId(id)).code).toBe('ENOENT');
  });
});

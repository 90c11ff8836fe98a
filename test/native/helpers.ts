// Helpers for the native-layer tests: a tiny BPF assembler (no loader is
// involved here), kernel gating and a private bpffs directory.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { Fd, nativeAvailable } from '../../native/index.js';
import { requireRoot } from '../lib/netns.js';
import { eth } from '../lib/packet.js';

// --- gating -----------------------------------------------------------------

/**
 * true when the kernel tests should run: root (see test/lib/netns.ts, which
 * fails under CI instead of skipping) and a built addon.
 */
export function requireKernel(): boolean {
  if (requireRoot('native kernel tests')) return false;
  if (!nativeAvailable()) {
    const why = 'the native addon is not built (run `make native`)';
    if (process.env.CI) throw new Error(`native tests cannot run: ${why}`);
    console.warn(`[skip] native kernel tests: ${why}`);
    return false;
  }
  return true;
}

/** Handles a test file makes; closeAll() (in afterAll) closes them even when a test failed half-way. */
export function fdTracker(): { track<T extends Fd>(x: T): T; closeAll(): void } {
  const opened: Fd[] = [];
  return {
    track<T extends Fd>(x: T): T {
      opened.push(x);
      return x;
    },
    closeAll() {
      for (const f of opened.splice(0)) f.close();
    },
  };
}

function ensureBpffs(): void {
  try {
    execFileSync('mountpoint', ['-q', '/sys/fs/bpf']);
  } catch {
    execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
  }
}

/** A private directory on bpffs for this test file; remove() deletes it and everything pinned in it. */
export function pinDir(tag: string): { path: string; remove(): void } {
  ensureBpffs();
  const path = `/sys/fs/bpf/weirtest-${tag}-${process.pid}`;
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path);
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

// --- assembler ----------------------------------------------------------------

export const R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5, R6 = 6, R10 = 10;

function insn(code: number, dst: number, src: number, off: number, imm: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(code, 0);
  b.writeUInt8(((src & 0xf) << 4) | (dst & 0xf), 1);
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm, 4);
  return b;
}

export const asm = {
  /** dst = imm (64-bit mov) */
  mov64Imm: (dst: number, imm: number) => insn(0xb7, dst, 0, 0, imm),
  /** dst = src */
  mov64Reg: (dst: number, src: number) => insn(0xbf, dst, src, 0, 0),
  /** dst += imm */
  add64Imm: (dst: number, imm: number) => insn(0x07, dst, 0, 0, imm),
  /** *(u32 *)(dst + off) = imm */
  stW: (dst: number, off: number, imm: number) => insn(0x62, dst, 0, off, imm),
  /** dst = *(u32 *)(src + off) */
  ldxW: (dst: number, src: number, off: number) => insn(0x61, dst, src, off, 0),
  /** if dst == imm goto +off */
  jeqImm: (dst: number, imm: number, off: number) => insn(0x15, dst, 0, off, imm),
  /** call helper */
  call: (helper: number) => insn(0x85, 0, 0, 0, helper),
  exit: () => insn(0x95, 0, 0, 0, 0),
  /** lock *(u64 *)(dst + off) += src  (BPF_STX | BPF_ATOMIC | BPF_DW, imm BPF_ADD) */
  atomicAdd64: (dst: number, src: number, off: number) => insn(0xdb, dst, src, off, 0x00),
  /** dst = map fd (ld_imm64 with src = BPF_PSEUDO_MAP_FD), two slots */
  ldMapFd: (dst: number, fd: number) =>
    Buffer.concat([insn(0x18, dst, 1, 0, fd), insn(0x00, 0, 0, 0, 0)]),
};

export function prog(...insns: Buffer[]): Buffer {
  return Buffer.concat(insns);
}

/** r0 = verdict; exit */
export function retProg(verdict: number): Buffer {
  return prog(asm.mov64Imm(R0, verdict), asm.exit());
}

/**
 * Counts every packet in slot 0 of an ARRAY map (u64 value) and returns `verdict`:
 *   r1 = map; *(u32 *)(fp - 4) = 0; r2 = fp - 4; r0 = map_lookup_elem(r1, r2);
 *   if r0 == 0 goto out; r1 = 1; lock *(u64 *)(r0 + 0) += r1; out: r0 = verdict; exit
 */
export function counterProg(mapFd: number, verdict: number): Buffer {
  return prog(
    asm.ldMapFd(R1, mapFd),
    asm.stW(R10, -4, 0),
    asm.mov64Reg(R2, R10),
    asm.add64Imm(R2, -4),
    asm.call(1), // bpf_map_lookup_elem
    asm.jeqImm(R0, 0, 2),
    asm.mov64Imm(R1, 1),
    asm.atomicAdd64(R0, R1, 0),
    asm.mov64Imm(R0, verdict),
    asm.exit(),
  );
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
export function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** A small, valid IPv4/UDP frame for test runs. */
export function udpFrame(): Buffer {
  return eth({ src: 'bb:bb:bb:bb:bb:bb', dst: 'aa:aa:aa:aa:aa:aa' })
    .ipv4({ src: '10.0.0.1', dst: '10.0.0.2' })
    .udp({ sport: 1234, dport: 5678 })
    .payload(Buffer.alloc(22))
    .build();
}

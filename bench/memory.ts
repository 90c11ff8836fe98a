// Kernel memory as the bench measures it.
//
// Netfilter rules (iptables-nft and nft both end up as nf_tables objects) and
// BPF maps are kernel allocations charged to the memory cgroup of the process
// that made them (GFP_KERNEL_ACCOUNT). So each side's programming process runs
// in a memory cgroup of its own, made by the bench under the bench's own
// cgroup, and a ruleset's footprint is the change in that cgroup's kernel
// memory (v1: memory.kmem.usage_in_bytes; v2: memory.stat "kernel") across
// programming it. Where no cgroup can be made, the fallback is the change in
// /proc/meminfo's SUnreclaim + VmallocUsed + Percpu (system-wide, noisy).
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const FIELDS = ['SUnreclaim', 'VmallocUsed', 'Percpu'] as const;

/** Sum of the kernel-memory fields of /proc/meminfo, in bytes. */
export function kernelMemBytes(text = readFileSync('/proc/meminfo', 'utf8')): number {
  let sum = 0;
  for (const f of FIELDS) {
    const m = new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`/proc/meminfo has no ${f} line`);
    sum += Number(m[1]) * 1024;
  }
  return sum;
}

/** Let freed objects (RCU callbacks, deferred frees) settle before reading. */
export const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));

/** A memory cgroup the bench made, whose kernel-memory charge it reads. */
export class KmemCgroup {
  private constructor(
    readonly path: string,
    readonly version: 1 | 2,
  ) {}

  /** Under this process's own memory cgroup; a string says why it could not be made. */
  static create(name: string, selfCgroup = readFileSync('/proc/self/cgroup', 'utf8')): KmemCgroup | string {
    const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(selfCgroup);
    const v2 = /^0::(.*)$/m.exec(selfCgroup);
    let dir: string;
    let version: 1 | 2;
    if (v1 && existsSync('/sys/fs/cgroup/memory')) {
      dir = join('/sys/fs/cgroup/memory', v1[1], name);
      version = 1;
    } else if (v2 && existsSync('/sys/fs/cgroup/cgroup.controllers')) {
      dir = join('/sys/fs/cgroup', v2[1], name);
      version = 2;
    } else {
      return 'no memory cgroup hierarchy is mounted';
    }
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      return `cannot create memory cgroup ${dir}: ${(e as Error).message}`;
    }
    const cg = new KmemCgroup(dir, version);
    try {
      cg.usage();
    } catch (e) {
      cg.remove();
      return `memory cgroup ${dir} has no kernel-memory accounting: ${(e as Error).message}`;
    }
    return cg;
  }

  get procs(): string {
    return join(this.path, 'cgroup.procs');
  }

  /** Kernel memory charged to the cgroup, in bytes. */
  usage(): number {
    if (this.version === 1) return Number(readFileSync(join(this.path, 'memory.kmem.usage_in_bytes'), 'utf8').trim());
    const m = /^kernel (\d+)$/m.exec(readFileSync(join(this.path, 'memory.stat'), 'utf8'));
    if (!m) throw new Error('memory.stat has no "kernel" line');
    return Number(m[1]);
  }

  /** Move a process in (the bench does this before exec, through a shell wrapper). */
  add(pid: number): void {
    writeFileSync(this.procs, String(pid));
  }

  remove(): void {
    try {
      rmdirSync(this.path);
    } catch {
      /* still has tasks or already gone; the parent cleanup retries */
    }
  }
}

/** VmRSS of a process, in bytes. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`/proc/${pid}/status has no VmRSS`);
  return Number(m[1]) * 1024;
}

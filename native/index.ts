/**
 * weir native layer — the TypeScript facade over the `weir_native` addon
 * (node-addon-api over libbpf). Nothing else in the project loads the raw
 * addon; everything goes through the classes and functions here.
 *
 * - Every failure is a {@link BpfError} with errno, code, the failing syscall
 *   or libbpf function, and a message naming the object (map name/id/fd,
 *   ifindex, path). Argument mistakes are TypeError/RangeError thrown here
 *   (and again in C++), never a kernel EFAULT or a crash.
 * - File descriptors are owned by {@link Fd} objects: close() is explicit and
 *   idempotent; a FinalizationRegistry closes leaked fds as a safety net only.
 * - BpfMap.mmap() maps a BPF_F_MMAPABLE array's values into a Buffer that
 *   never dangles (see {@link MapMapping}).
 * - Program loads and test runs happen on the libuv pool (they can take long);
 *   everything else is a quick synchronous syscall. {@link RingBuffer} reads
 *   BPF ring buffers from the event loop itself (libuv watches their epoll fd).
 * - Network namespaces: the tc/xdp/ifindex calls take `netns` (a path such as
 *   /run/netns/NAME or /proc/PID/ns/net, or a bare NAME meaning
 *   /run/netns/NAME). The native side runs the call on a short-lived thread
 *   that joins that namespace; the Node threads never change namespace.
 *
 * The addon is loaded lazily, on first use, so code that only needs the
 * constants (or pure unit tests importing modules that import this one) works
 * without a built addon.
 */
import { existsSync, statfsSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------
// Constants (values from the kernel uapi, linux/bpf.h and linux/if_link.h)
// ---------------------------------------------------------------------------

export const MapType = {
  UNSPEC: 0,
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  STACK_TRACE: 7,
  CGROUP_ARRAY: 8,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  DEVMAP: 14,
  SOCKMAP: 15,
  CPUMAP: 16,
  XSKMAP: 17,
  SOCKHASH: 18,
  CGROUP_STORAGE: 19,
  REUSEPORT_SOCKARRAY: 20,
  PERCPU_CGROUP_STORAGE: 21,
  QUEUE: 22,
  STACK: 23,
  SK_STORAGE: 24,
  DEVMAP_HASH: 25,
  STRUCT_OPS: 26,
  RINGBUF: 27,
  INODE_STORAGE: 28,
  TASK_STORAGE: 29,
  BLOOM_FILTER: 30,
  USER_RINGBUF: 31,
  CGRP_STORAGE: 32,
  ARENA: 33,
} as const;

export const ProgType = {
  UNSPEC: 0,
  SOCKET_FILTER: 1,
  KPROBE: 2,
  SCHED_CLS: 3,
  SCHED_ACT: 4,
  TRACEPOINT: 5,
  XDP: 6,
  PERF_EVENT: 7,
  CGROUP_SKB: 8,
  CGROUP_SOCK: 9,
  LWT_IN: 10,
  LWT_OUT: 11,
  LWT_XMIT: 12,
  SOCK_OPS: 13,
  SK_SKB: 14,
  CGROUP_DEVICE: 15,
  SK_MSG: 16,
  RAW_TRACEPOINT: 17,
  CGROUP_SOCK_ADDR: 18,
  LWT_SEG6LOCAL: 19,
  LIRC_MODE2: 20,
  SK_REUSEPORT: 21,
  FLOW_DISSECTOR: 22,
  CGROUP_SYSCTL: 23,
  RAW_TRACEPOINT_WRITABLE: 24,
  CGROUP_SOCKOPT: 25,
  TRACING: 26,
  STRUCT_OPS: 27,
  EXT: 28,
  LSM: 29,
  SK_LOOKUP: 30,
  SYSCALL: 31,
  NETFILTER: 32,
} as const;

export const AttachType = {
  CGROUP_INET_INGRESS: 0,
  CGROUP_INET_EGRESS: 1,
  CGROUP_INET_SOCK_CREATE: 2,
  CGROUP_SOCK_OPS: 3,
  SK_SKB_STREAM_PARSER: 4,
  SK_SKB_STREAM_VERDICT: 5,
  CGROUP_DEVICE: 6,
  SK_MSG_VERDICT: 7,
  CGROUP_INET4_BIND: 8,
  CGROUP_INET6_BIND: 9,
  CGROUP_INET4_CONNECT: 10,
  CGROUP_INET6_CONNECT: 11,
  CGROUP_INET4_POST_BIND: 12,
  CGROUP_INET6_POST_BIND: 13,
  CGROUP_UDP4_SENDMSG: 14,
  CGROUP_UDP6_SENDMSG: 15,
  LIRC_MODE2: 16,
  FLOW_DISSECTOR: 17,
  CGROUP_SYSCTL: 18,
  CGROUP_UDP4_RECVMSG: 19,
  CGROUP_UDP6_RECVMSG: 20,
  CGROUP_GETSOCKOPT: 21,
  CGROUP_SETSOCKOPT: 22,
  TRACE_RAW_TP: 23,
  TRACE_FENTRY: 24,
  TRACE_FEXIT: 25,
  MODIFY_RETURN: 26,
  LSM_MAC: 27,
  TRACE_ITER: 28,
  CGROUP_INET4_GETPEERNAME: 29,
  CGROUP_INET6_GETPEERNAME: 30,
  CGROUP_INET4_GETSOCKNAME: 31,
  CGROUP_INET6_GETSOCKNAME: 32,
  XDP_DEVMAP: 33,
  CGROUP_INET_SOCK_RELEASE: 34,
  XDP_CPUMAP: 35,
  SK_LOOKUP: 36,
  XDP: 37,
  SK_SKB_VERDICT: 38,
  SK_REUSEPORT_SELECT: 39,
  SK_REUSEPORT_SELECT_OR_MIGRATE: 40,
  PERF_EVENT: 41,
  TRACE_KPROBE_MULTI: 42,
  LSM_CGROUP: 43,
  STRUCT_OPS: 44,
  NETFILTER: 45,
  TCX_INGRESS: 46,
  TCX_EGRESS: 47,
} as const;

export const UpdateFlags = { ANY: 0, NOEXIST: 1, EXIST: 2, F_LOCK: 4 } as const;

export const MapFlags = {
  NO_PREALLOC: 1,
  NO_COMMON_LRU: 2,
  NUMA_NODE: 4,
  RDONLY: 8,
  WRONLY: 16,
  STACK_BUILD_ID: 32,
  ZERO_SEED: 64,
  RDONLY_PROG: 128,
  WRONLY_PROG: 256,
  CLONE: 512,
  MMAPABLE: 1024,
  PRESERVE_ELEMS: 2048,
  INNER_MAP: 4096,
} as const;

/** BPF_OBJ_GET file flags (fromPin). */
export const ObjGetFlags = { RDONLY: 8, WRONLY: 16 } as const;

/** Program load flags (BPF_F_* for BPF_PROG_LOAD). */
export const ProgFlags = {
  STRICT_ALIGNMENT: 1,
  ANY_ALIGNMENT: 2,
  TEST_RND_HI32: 4,
  TEST_STATE_FREQ: 8,
  SLEEPABLE: 16,
  XDP_HAS_FRAGS: 32,
} as const;

/** Verdicts, for tests and hand-written programs. */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;
export const TcAction = { UNSPEC: -1, OK: 0, SHOT: 2, REDIRECT: 7 } as const;

const MAP_TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(MapType).map(([k, v]) => [v, k]),
);
/** 'HASH' for 1, etc.; `type N` for unknown values. */
export function mapTypeName(type: number): string {
  return MAP_TYPE_NAMES[type] ?? `type ${type}`;
}

const PERCPU_TYPES: ReadonlySet<number> = new Set([
  MapType.PERCPU_HASH,
  MapType.PERCPU_ARRAY,
  MapType.LRU_PERCPU_HASH,
  MapType.PERCPU_CGROUP_STORAGE,
]);
export function isPerCpuMapType(type: number): boolean {
  return PERCPU_TYPES.has(type);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

const ERRNO_NAMES: Record<number, string> = (() => {
  const out: Record<number, string> = { 512: 'ERESTARTSYS', 524: 'ENOTSUPP', 525: 'ETOOSMALL' };
  for (const [name, num] of Object.entries(osConstants.errno)) {
    if (out[num] === undefined) out[num] = name;
  }
  return out;
})();

/** The symbolic name of an errno ('ENOENT'), including kernel-internal ones (524 'ENOTSUPP'). */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `E${errno}`;
}

export interface BpfErrorProps {
  errno: number;
  code?: string;
  syscall: string;
  log?: string;
}

/** Every failure of a BPF / netlink operation. */
export class BpfError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  readonly log?: string;

  constructor(message: string, props: BpfErrorProps) {
    super(message);
    this.name = 'BpfError';
    this.errno = props.errno;
    this.code = props.code ?? errnoName(props.errno);
    this.syscall = props.syscall;
    if (props.log !== undefined) this.log = props.log;
  }
}

const EBADF = osConstants.errno.EBADF;
const EINVAL = osConstants.errno.EINVAL;
const ENOENT = osConstants.errno.ENOENT;

// ---------------------------------------------------------------------------
// The raw addon (private)
// ---------------------------------------------------------------------------

interface RawMapInfo extends MapInfo {
  mapExtra: bigint;
  valueBufferSize: number;
}
interface NativeMapHandle {
  info(): RawMapInfo;
  invalidate(): void;
  lookup(key: Buffer | undefined, flags: number): Buffer | undefined;
  update(key: Buffer | undefined, value: Buffer, flags: number): void;
  delete(key: Buffer | undefined): boolean;
  nextKey(key: Buffer | undefined): Buffer | undefined;
  lookupAndDelete(key: Buffer | undefined, flags: number): Buffer | undefined;
  lookupBatch(batchSize: number): { keys: Buffer; values: Buffer; count: number };
  updateBatch(keys: Buffer, values: Buffer, count: number, flags: number): number;
  deleteBatch(keys: Buffer, count: number): number;
  freeze(): void;
  mmap(): Buffer;
  unmap(buffer: Buffer): boolean;
}
type FdKind = 'map' | 'prog' | 'btf' | 'link' | 'other';
interface XdpQueryRaw {
  progId: number;
  mode: 'native' | 'generic' | 'offload' | 'multi';
  drvProgId: number;
  skbProgId: number;
  hwProgId: number;
}
interface NativeRingBufferHandle {
  add(fd: number): number;
  consume(deliver: (data: Buffer, ring: number) => void): number;
  /** true when records are pending from an interrupted pass (the caller schedules kick()). */
  start(deliver: (data: Buffer, ring: number) => void, onError: (err: unknown) => void): boolean;
  stop(): void;
  kick(): void;
  close(): void;
  stats(): { records: number; wakeups: number; pending: number; rings: number; running: boolean; closed: boolean };
}
interface RawAddon {
  setErrorClass(ctor: new (message: string, props: BpfErrorProps) => Error): void;
  errnoName(errno: number): string;
  errnoText(errno: number): string;
  closeFd(fd: number): void;
  dupFd(fd: number): number;
  objPin(fd: number, path: string): void;
  objGet(path: string, flags?: number): number;
  fdById(kind: 'map' | 'prog' | 'btf' | 'link', id: number): number;
  fdKind(fd: number): FdKind;
  possibleCpus(): number;
  mapCreate(o: Record<string, unknown>): number;
  NativeMap: new (fd: number) => NativeMapHandle;
  progLoad(o: Record<string, unknown>): Promise<{ fd: number; log: string }>;
  progTestRun(
    fd: number,
    o: Record<string, unknown>,
  ): Promise<{ retval: number; durationNs: number; data: Buffer; ctx?: Buffer }>;
  progInfo(fd: number): ProgInfo;
  btfLoad(blob: Buffer, logLevel?: number): { fd: number; log: string };
  btfInfo(fd: number): { id: number; size: number };
  btfRaw(fd: number): Buffer;
  linkInfo(fd: number): LinkInfo;
  ifindex(name: string, netns?: string): number;
  tcCreateHook(ifindex: number, netns?: string): void;
  tcDestroyHook(ifindex: number, netns?: string): void;
  tcAttach(
    ifindex: number,
    point: string,
    progFd: number,
    priority: number,
    handle: number,
    replace: boolean,
    netns?: string,
  ): { priority: number; handle: number };
  tcDetach(ifindex: number, point: string, priority: number, handle: number, netns?: string): void;
  tcQuery(ifindex: number, point: string, priority: number, handle: number, netns?: string): number | undefined;
  xdpAttach(ifindex: number, progFd: number, mode: string | undefined, replace: boolean, netns?: string): void;
  xdpDetach(ifindex: number, mode: string | undefined, netns?: string): void;
  xdpQuery(ifindex: number, netns?: string): XdpQueryRaw | undefined;
  tcxAttach(ifindex: number, point: string, progFd: number, netns?: string): number;
  linkDetach(fd: number): void;
  NativeRingBuffer: new (fd: number, batch: number) => NativeRingBufferHandle;
}

const ADDON_REL = join('native', 'build', 'Release', 'weir_native.node');

/** Where the addon is looked for: $WEIR_NATIVE_ADDON, else native/build/Release/weir_native.node under the first ancestor of this file that has one (works from native/index.ts and dist/native/index.js). */
function findAddon(): { path?: string; tried: string[] } {
  const tried: string[] = [];
  const env = process.env.WEIR_NATIVE_ADDON;
  if (env) {
    tried.push(env);
    return existsSync(env) ? { path: resolve(env), tried } : { tried };
  }
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, ADDON_REL);
    tried.push(candidate);
    if (existsSync(candidate)) return { path: candidate, tried };
    const parent = dirname(dir);
    if (parent === dir) return { tried };
    dir = parent;
  }
}

let rawAddon: RawAddon | undefined;
function addon(): RawAddon {
  if (rawAddon) return rawAddon;
  const { path, tried } = findAddon();
  if (!path) {
    throw new Error(
      `weir native addon (weir_native.node) is not built; run \`make native\` ` +
        `(npx node-gyp rebuild --directory native). Looked in: ${tried.join(', ')}`,
    );
  }
  const require = createRequire(import.meta.url);
  let loaded: RawAddon;
  try {
    loaded = require(path) as RawAddon;
  } catch (err) {
    throw new Error(
      `weir native addon at ${path} failed to load (${(err as Error).message}); rebuild it with \`make native\``,
      { cause: err },
    );
  }
  loaded.setErrorClass(BpfError);
  rawAddon = loaded;
  return loaded;
}

/** True when the addon is built and loads (for tests deciding whether to run). */
export function nativeAvailable(): boolean {
  try {
    addon();
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Validation helpers
// ---------------------------------------------------------------------------

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}
function toBuffer(v: unknown, what: string): Buffer {
  if (!isBytes(v)) throw new TypeError(`${what} must be a Buffer or Uint8Array`);
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
function checkInt(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${what} must be an integer, got ${String(v)}`);
  if (v < min || v > max) throw new RangeError(`${what} must be in [${min}, ${max}], got ${v}`);
  return v;
}
function optInt(v: unknown, what: string, min: number, max: number, def: number): number {
  return v === undefined || v === null ? def : checkInt(v, what, min, max);
}
const U32 = 0xffffffff;
const I32 = 0x7fffffff;
function checkString(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new TypeError(`${what} must be a non-empty string`);
  if (v.includes('\0')) throw new TypeError(`${what} must not contain NUL`);
  return v;
}

/** Kernel object names: at most 15 chars of [A-Za-z0-9_.]; other chars become '_'. */
export function sanitizeObjName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.]/g, '_').slice(0, 15);
}

function netnsPath(ns: NetnsRef | undefined): string | undefined {
  if (ns === undefined) return undefined;
  checkString(ns, 'netns');
  return ns.includes('/') ? ns : `/run/netns/${ns}`;
}

function progFdOf(p: BpfProgram | number, what = 'prog'): number {
  if (p instanceof BpfProgram) return p.fd;
  return checkInt(p, `${what} (fd)`, 0, I32);
}

// ---------------------------------------------------------------------------
// File descriptors
// ---------------------------------------------------------------------------

const leakedFds = new FinalizationRegistry<number>((fd) => {
  try {
    rawAddon?.closeFd(fd);
  } catch {
    // Safety net only: nothing useful to do with an error here.
  }
});

/** Owns one file descriptor. close() is explicit and idempotent. */
export class Fd {
  #fd: number;

  constructor(fd: number) {
    checkInt(fd, 'fd', 0, I32);
    this.#fd = fd;
    leakedFds.register(this, fd, this);
  }

  get fd(): number {
    if (this.#fd < 0) {
      throw new BpfError(`${this.describe()}: file descriptor is closed`, { errno: EBADF, syscall: 'fd' });
    }
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    leakedFds.unregister(this);
    this.onClose();
    addon().closeFd(fd);
  }

  /** A new, independent fd for the same kernel object. */
  dup(): Fd {
    return new Fd(addon().dupFd(this.fd));
  }

  /** Hook for subclasses, run just before the fd is closed. */
  protected onClose(): void {}

  protected describe(): string {
    return `fd ${this.#fd}`;
  }
}

/** Pins the object behind `fd` at a bpffs path. */
function pinFd(fd: number, path: string): void {
  addon().objPin(fd, checkString(path, 'path'));
}

/** Opens a pin and checks that it holds the expected kind of object. */
function openPin(path: string, kind: FdKind, flags = 0): number {
  const a = addon();
  const fd = a.objGet(checkString(path, 'path'), flags);
  let actual: FdKind;
  try {
    actual = a.fdKind(fd);
  } catch (err) {
    a.closeFd(fd);
    throw err;
  }
  if (actual !== kind) {
    a.closeFd(fd);
    throw new BpfError(`pinned object ${path} is a BPF ${actual}, not a ${kind} (EINVAL)`, {
      errno: EINVAL,
      syscall: 'bpf_obj_get',
    });
  }
  return fd;
}

// ---------------------------------------------------------------------------
// Maps
// ---------------------------------------------------------------------------

export interface MapInfo {
  id: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

export interface MapCreateOptions {
  type: number;
  /** Truncated to 15 chars; characters the kernel rejects become '_'. */
  name?: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  btfFd?: number;
  btfKeyTypeId?: number;
  btfValueTypeId?: number;
  innerMapFd?: number;
  mapExtra?: bigint;
  numaNode?: number;
}

export class BpfMap extends Fd {
  readonly #handle: NativeMapHandle;
  readonly #info: MapInfo;
  readonly #valueBufferSize: number;

  /** Wraps an fd the caller hands over (it is closed if it is not a map). */
  constructor(fd: number) {
    super(fd);
    try {
      this.#handle = new (addon().NativeMap)(fd);
      const raw = this.#handle.info();
      this.#info = {
        id: raw.id,
        name: raw.name,
        type: raw.type,
        keySize: raw.keySize,
        valueSize: raw.valueSize,
        maxEntries: raw.maxEntries,
        flags: raw.flags,
        btfId: raw.btfId,
        btfKeyTypeId: raw.btfKeyTypeId,
        btfValueTypeId: raw.btfValueTypeId,
      };
      this.#valueBufferSize = raw.valueBufferSize;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  static create(opts: MapCreateOptions): BpfMap {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('BpfMap.create: options object required');
    const o: Record<string, unknown> = {
      type: checkInt(opts.type, 'type', 0, U32),
      keySize: checkInt(opts.keySize, 'keySize', 0, U32),
      valueSize: checkInt(opts.valueSize, 'valueSize', 0, U32),
      maxEntries: checkInt(opts.maxEntries, 'maxEntries', 0, U32),
      flags: optInt(opts.flags, 'flags', 0, U32, 0),
      btfFd: optInt(opts.btfFd, 'btfFd', 0, I32, 0),
      btfKeyTypeId: optInt(opts.btfKeyTypeId, 'btfKeyTypeId', 0, U32, 0),
      btfValueTypeId: optInt(opts.btfValueTypeId, 'btfValueTypeId', 0, U32, 0),
      innerMapFd: optInt(opts.innerMapFd, 'innerMapFd', 0, I32, 0),
      numaNode: optInt(opts.numaNode, 'numaNode', 0, U32, 0),
    };
    if (opts.name !== undefined) {
      if (typeof opts.name !== 'string') throw new TypeError('name must be a string');
      o.name = sanitizeObjName(opts.name);
    }
    if (opts.mapExtra !== undefined) {
      if (typeof opts.mapExtra !== 'bigint' || opts.mapExtra < 0n || opts.mapExtra > 0xffffffffffffffffn)
        throw new TypeError('mapExtra must be a bigint in [0, 2^64)');
      o.mapExtra = opts.mapExtra;
    }
    return new BpfMap(addon().mapCreate(o));
  }

  /** Opens a pinned map (BPF_OBJ_GET); a pin of anything else is a BpfError. */
  static fromPin(path: string, opts?: { flags?: number }): BpfMap {
    return new BpfMap(openPin(path, 'map', optInt(opts?.flags, 'flags', 0, U32, 0)));
  }

  static fromId(id: number): BpfMap {
    return new BpfMap(addon().fdById('map', checkInt(id, 'id', 1, U32)));
  }

  get info(): MapInfo {
    return { ...this.#info };
  }

  /** Size of a value buffer as user space sees it: valueSize, or roundup(valueSize, 8) * possibleCpus for per-CPU maps. */
  get valueBufferSize(): number {
    return this.#valueBufferSize;
  }

  override dup(): BpfMap {
    return new BpfMap(addon().dupFd(this.fd));
  }

  protected override onClose(): void {
    // The handle may be unset when the constructor failed half-way.
    this.#handle?.invalidate();
  }

  protected override describe(): string {
    const i = this.#info;
    return i ? `map ${i.name || '(unnamed)'} (id ${i.id})` : super.describe();
  }

  #open(): NativeMapHandle {
    void this.fd; // throws a BpfError when closed
    return this.#handle;
  }

  #key(key: unknown, op: string): Buffer | undefined {
    const ks = this.#info.keySize;
    if (ks === 0) {
      if (key === undefined || (isBytes(key) && key.length === 0)) return undefined;
      throw new RangeError(`${op}: ${this.describe()} has no keys (key_size 0)`);
    }
    const b = toBuffer(key, `${op}: key`);
    if (b.length !== ks)
      throw new RangeError(`${op}: key is ${b.length} bytes but ${this.describe()} has key_size ${ks}`);
    return b;
  }

  #value(value: unknown, op: string): Buffer {
    const b = toBuffer(value, `${op}: value`);
    if (b.length !== this.#valueBufferSize) {
      const pc = this.#valueBufferSize !== this.#info.valueSize ? ' (per-CPU: roundup(valueSize, 8) * possibleCpus())' : '';
      throw new RangeError(
        `${op}: value is ${b.length} bytes but ${this.describe()} needs ${this.#valueBufferSize}${pc}`,
      );
    }
    return b;
  }

  /** The value, or undefined when the key is absent. Queue/stack: peek (key empty or undefined). */
  lookup(key?: Buffer, flags?: number): Buffer | undefined {
    return this.#open().lookup(this.#key(key, 'lookup'), optInt(flags, 'flags', 0, U32, 0));
  }

  /** Default flags UpdateFlags.ANY. Queue/stack: push (key empty or undefined). */
  update(key: Buffer | undefined, value: Buffer, flags?: number): void {
    const k = this.#key(key, 'update');
    const v = this.#value(value, 'update');
    this.#open().update(k, v, optInt(flags, 'flags', 0, U32, UpdateFlags.ANY));
  }

  /** false when the key was absent. */
  delete(key: Buffer): boolean {
    return this.#open().delete(this.#key(key, 'delete'));
  }

  /** The key after `key` (the first key without one); undefined at the end. */
  nextKey(key?: Buffer): Buffer | undefined {
    const k = key === undefined ? undefined : this.#key(key, 'nextKey');
    return this.#open().nextKey(k);
  }

  *keys(): Generator<Buffer> {
    let k = this.nextKey();
    while (k !== undefined) {
      yield k;
      k = this.nextKey(k);
    }
  }

  /** Entries via nextKey + lookup; keys deleted meanwhile are skipped. */
  *entries(): Generator<[Buffer, Buffer]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v !== undefined) yield [k, v];
    }
  }

  /** HASH-family maps (kernel 5.14+) and queue/stack (pop: key empty or undefined). */
  lookupAndDelete(key?: Buffer, flags?: number): Buffer | undefined {
    return this.#open().lookupAndDelete(this.#key(key, 'lookupAndDelete'), optInt(flags, 'flags', 0, U32, 0));
  }

  /** The whole map via BPF_MAP_LOOKUP_BATCH, in chunks of batchSize (grown when a hash bucket does not fit). */
  lookupBatch(opts?: { batchSize?: number }): Array<[Buffer, Buffer]> {
    const def = Math.max(1, Math.min(this.#info.maxEntries, 1024));
    // Never more than the map holds, nor more than 64 MiB of keys+values per chunk.
    const cap = Math.max(1, Math.min(this.#info.maxEntries, Math.floor((64 << 20) / (this.#info.keySize + this.#valueBufferSize))));
    const bs = Math.min(optInt(opts?.batchSize, 'batchSize', 1, 1 << 20, def), cap);
    const { keys, values, count } = this.#open().lookupBatch(bs);
    const ks = this.#info.keySize;
    const vs = this.#valueBufferSize;
    const out: Array<[Buffer, Buffer]> = new Array(count);
    for (let i = 0; i < count; i++) {
      out[i] = [keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs)];
    }
    return out;
  }

  /**
   * BPF_MAP_UPDATE_BATCH; returns how many were written. The kernel's batch
   * update takes only UpdateFlags.ANY or F_LOCK (no NOEXIST / EXIST): use
   * update() per key for those.
   */
  updateBatch(keys: Buffer[], values: Buffer[], flags?: number): number {
    if (!Array.isArray(keys) || !Array.isArray(values)) throw new TypeError('updateBatch: keys and values must be arrays');
    const f = optInt(flags, 'flags', 0, U32, UpdateFlags.ANY);
    if ((f & ~UpdateFlags.F_LOCK) !== 0)
      throw new RangeError(
        `updateBatch: flags ${f} not supported; the kernel's batch update takes only UpdateFlags.ANY or F_LOCK (use update() per key for NOEXIST/EXIST)`,
      );
    if (keys.length !== values.length)
      throw new RangeError(`updateBatch: ${keys.length} keys but ${values.length} values`);
    if (keys.length === 0) return 0;
    const k = Buffer.concat(keys.map((x) => this.#key(x, 'updateBatch') ?? Buffer.alloc(0)));
    const v = Buffer.concat(values.map((x) => this.#value(x, 'updateBatch')));
    return this.#open().updateBatch(k, v, keys.length, f);
  }

  /** BPF_MAP_DELETE_BATCH; absent keys are skipped; returns how many were deleted. */
  deleteBatch(keys: Buffer[]): number {
    if (!Array.isArray(keys)) throw new TypeError('deleteBatch: keys must be an array');
    if (keys.length === 0) return 0;
    const k = Buffer.concat(keys.map((x) => this.#key(x, 'deleteBatch') ?? Buffer.alloc(0)));
    return this.#open().deleteBatch(k, keys.length);
  }

  /** BPF_MAP_FREEZE: user space can no longer write the map (EBUSY while a writable mapping exists). */
  freeze(): void {
    this.#open().freeze();
  }

  /**
   * Maps the values of an ARRAY created with MapFlags.MMAPABLE into this
   * process (shared with the kernel: programs see writes at once, and user
   * space sees the programs' writes). Any other map is a BpfError (EINVAL).
   * Mappings are always read-write (a read-only one under a Buffer would
   * crash the process on a stray write), so a frozen map or one opened
   * read-only is a BpfError (EPERM). See {@link MapMapping} for the layout
   * and lifetime.
   */
  mmap(): MapMapping {
    const h = this.#open();
    return new MapMapping(this, h, h.mmap());
  }

  pin(path: string): void {
    pinFd(this.fd, path);
  }
}

/**
 * A shared mapping of an mmap-able ARRAY's values ({@link BpfMap.mmap}).
 *
 * Layout: value i is at byte `i * stride`, stride = roundup(valueSize, 8) (the
 * kernel's element size); `buffer.length` is stride × maxEntries rounded up to
 * a page. Values are in host byte order as programs read them. Each value is
 * written with plain stores: a program may see a value half written, and a
 * table written value by value is seen part old, part new (swap whole tables
 * through a map-in-map for atomicity).
 *
 * Lifetime: the mapping holds its own reference to the kernel map, so the map
 * lives while it is mapped even when every fd is closed. close() (or closing
 * the BpfMap it came from) drops that reference at once. `buffer` never
 * becomes invalid memory: after close() it is detached from the map (reads
 * zeros, writes go nowhere) and its address range is freed when the Buffer is
 * garbage collected. Close mappings explicitly: the garbage collector does not
 * know how much kernel memory an unreachable mapping keeps alive.
 */
export class MapMapping {
  /** The mapped bytes (external memory; do not keep subarrays past close() expecting map contents). */
  readonly buffer: Buffer;
  /** Bytes from one value to the next: roundup(valueSize, 8). */
  readonly stride: number;
  readonly valueSize: number;
  /** max_entries of the map. */
  readonly entries: number;
  readonly #map: BpfMap;
  readonly #handle: NativeMapHandle;
  readonly #what: string;
  #closed = false;

  /** @internal made by BpfMap.mmap() */
  constructor(map: BpfMap, handle: unknown, buffer: Buffer) {
    const info = map.info;
    this.#map = map;
    this.#handle = handle as NativeMapHandle;
    this.buffer = buffer;
    this.valueSize = info.valueSize;
    this.stride = Math.ceil(info.valueSize / 8) * 8;
    this.entries = info.maxEntries;
    this.#what = `map ${info.name || '(unnamed)'} (id ${info.id})`;
  }

  /** True after close() or once the map it came from is closed. */
  get closed(): boolean {
    return this.#closed || this.#map.closed;
  }

  /** A view of value `index` (valueSize bytes) inside `buffer`. */
  value(index: number): Buffer {
    checkInt(index, 'index', 0, this.entries - 1);
    if (this.closed) throw new BpfError(`MapMapping.value: the mapping of ${this.#what} is closed (EBADF)`, { errno: EBADF, syscall: 'mmap' });
    return this.buffer.subarray(index * this.stride, index * this.stride + this.valueSize);
  }

  /** Detaches `buffer` from the map (see the class comment). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.unmap(this.buffer);
  }
}

// ---------------------------------------------------------------------------
// BTF
// ---------------------------------------------------------------------------

export class Btf extends Fd {
  readonly log: string;
  #id?: number;

  constructor(fd: number, log = '') {
    super(fd);
    this.log = log;
  }

  /** BPF_BTF_LOAD. On failure the BpfError message and .log hold the kernel's BTF log. */
  static load(blob: Buffer, opts?: { logLevel?: number }): Btf {
    const b = toBuffer(blob, 'BTF blob');
    if (b.length === 0) throw new TypeError('BTF blob is empty');
    const level = optInt(opts?.logLevel, 'logLevel', 0, 7, 0);
    const { fd, log } = addon().btfLoad(b, level);
    return new Btf(fd, log);
  }

  static fromId(id: number): Btf {
    return new Btf(addon().fdById('btf', checkInt(id, 'id', 1, U32)));
  }

  get id(): number {
    this.#id ??= addon().btfInfo(this.fd).id;
    return this.#id;
  }

  /** The raw BTF blob the kernel holds for this object (parse it with loader's parseBtf). */
  raw(): Buffer {
    return addon().btfRaw(this.fd);
  }
}

// ---------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------

export interface ProgInfo {
  id: number;
  name: string;
  type: number;
  /** hex */
  tag: string;
  btfId: number;
  mapIds: number[];
}

export interface ProgLoadOptions {
  type: number;
  name?: string;
  expectedAttachType?: number;
  license: string;
  /** 8-byte bpf_insn array */
  insns: Buffer;
  btfFd?: number;
  funcInfo?: Buffer;
  funcInfoRecSize?: number;
  lineInfo?: Buffer;
  lineInfoRecSize?: number;
  /** 0, 1, 2 (4 = stats may be or-ed in) */
  logLevel?: number;
  /** Initial log buffer size (default 1 MiB; grown up to 64 MiB on ENOSPC). */
  logSize?: number;
  flags?: number;
  kernVersion?: number;
}

export interface TestRunOptions {
  data?: Buffer;
  /** default data.length + 256 */
  dataSizeOut?: number;
  ctx?: Buffer;
  ctxSizeOut?: number;
  /** At most 10,000,000. */
  repeat?: number;
  flags?: number;
  /** Required with BPF_F_TEST_XDP_LIVE_FRAMES, which transmits the frames for real. */
  allowLiveFrames?: boolean;
}

export interface TestRunResult {
  /** The program's return value as a signed 32-bit int (tc's TC_ACT_UNSPEC is -1). */
  retval: number;
  durationNs: number;
  /** sliced to data_size_out */
  data: Buffer;
  ctx?: Buffer;
}

export class BpfProgram extends Fd {
  /** The verifier log of a load with logLevel > 0 ('' otherwise). */
  readonly log: string;

  constructor(fd: number, log = '') {
    super(fd);
    this.log = log;
  }

  /**
   * BPF_PROG_LOAD on the libuv pool. A failed load with logLevel 0 is retried
   * once with logLevel 1 for the log. Rejects with a BpfError whose message is
   * `load program <name>: <strerror> (<code>)\nverifier log:\n<full log>`.
   */
  static async load(opts: ProgLoadOptions): Promise<BpfProgram> {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('BpfProgram.load: options object required');
    const insns = toBuffer(opts.insns, 'insns');
    if (insns.length === 0 || insns.length % 8 !== 0)
      throw new RangeError(`insns must be a non-empty multiple of 8 bytes, got ${insns.length}`);
    const o: Record<string, unknown> = {
      type: checkInt(opts.type, 'type', 0, U32),
      license: checkString(opts.license, 'license'),
      insns,
      expectedAttachType: optInt(opts.expectedAttachType, 'expectedAttachType', 0, U32, 0),
      btfFd: optInt(opts.btfFd, 'btfFd', 0, I32, 0),
      flags: optInt(opts.flags, 'flags', 0, U32, 0),
      kernVersion: optInt(opts.kernVersion, 'kernVersion', 0, U32, 0),
      logLevel: optInt(opts.logLevel, 'logLevel', 0, 7, 0),
      logSize: optInt(opts.logSize, 'logSize', 128, 64 << 20, 1 << 20),
    };
    if (opts.name !== undefined) {
      if (typeof opts.name !== 'string') throw new TypeError('name must be a string');
      o.name = sanitizeObjName(opts.name);
    }
    for (const [buf, rec] of [
      ['funcInfo', 'funcInfoRecSize'],
      ['lineInfo', 'lineInfoRecSize'],
    ] as const) {
      if (opts[buf] === undefined) continue;
      const b = toBuffer(opts[buf], buf);
      const r = checkInt(opts[rec], rec, 1, 1 << 16);
      if (b.length % r !== 0) throw new RangeError(`${buf} length ${b.length} is not a multiple of ${rec} ${r}`);
      o[buf] = b;
      o[rec] = r;
    }
    const { fd, log } = await addon().progLoad(o);
    return new BpfProgram(fd, log);
  }

  static fromPin(path: string): BpfProgram {
    return new BpfProgram(openPin(path, 'prog'));
  }

  static fromId(id: number): BpfProgram {
    return new BpfProgram(addon().fdById('prog', checkInt(id, 'id', 1, U32)));
  }

  /** Fetched from the kernel on each access. */
  get info(): ProgInfo {
    return addon().progInfo(this.fd);
  }

  override dup(): BpfProgram {
    return new BpfProgram(addon().dupFd(this.fd), this.log);
  }

  /** BPF_PROG_TEST_RUN on the libuv pool. */
  async testRun(opts: TestRunOptions = {}): Promise<TestRunResult> {
    // repeat is bounded so one call cannot hold a libuv pool thread for long;
    // BPF_F_TEST_XDP_LIVE_FRAMES (2) really transmits, so it must be asked for.
    const flags = optInt(opts.flags, 'flags', 0, U32, 0);
    if (flags & 2 && !opts.allowLiveFrames) {
      throw new RangeError('testRun: flag BPF_F_TEST_XDP_LIVE_FRAMES sends real packets; pass allowLiveFrames: true to mean it');
    }
    const o: Record<string, unknown> = {
      repeat: optInt(opts.repeat, 'repeat', 0, 10_000_000, 0),
      flags,
    };
    let dataLen = 0;
    if (opts.data !== undefined) {
      o.data = toBuffer(opts.data, 'data');
      dataLen = (o.data as Buffer).length;
    }
    o.dataSizeOut = optInt(opts.dataSizeOut, 'dataSizeOut', 0, 1 << 30, dataLen + 256);
    if (opts.ctx !== undefined) o.ctx = toBuffer(opts.ctx, 'ctx');
    if (opts.ctxSizeOut !== undefined) o.ctxSizeOut = checkInt(opts.ctxSizeOut, 'ctxSizeOut', 0, 1 << 20);
    const r = await addon().progTestRun(this.fd, o);
    return { ...r, retval: r.retval | 0 };
  }

  pin(path: string): void {
    pinFd(this.fd, path);
  }
}

// ---------------------------------------------------------------------------
// Links (tcx)
// ---------------------------------------------------------------------------

export interface LinkInfo {
  id: number;
  type: number;
  progId: number;
}

/** A BPF link (BPF_LINK_CREATE). Closing the last fd of an unpinned link detaches it. */
export class BpfLink extends Fd {
  /**
   * tcx attach (kernel 6.6+): BPF_LINK_CREATE with BPF_TCX_INGRESS/EGRESS.
   * The program runs before any tc clsact filters; the attachment lives as
   * long as the link (keep it open, or pin it).
   */
  static tcx(o: { ifindex: number; attachPoint: 'ingress' | 'egress'; prog: BpfProgram | number; netns?: NetnsRef }): BpfLink {
    const ifx = checkInt(o.ifindex, 'ifindex', 1, I32);
    checkPoint(o.attachPoint);
    return new BpfLink(addon().tcxAttach(ifx, o.attachPoint, progFdOf(o.prog), netnsPath(o.netns)));
  }

  static fromPin(path: string): BpfLink {
    return new BpfLink(openPin(path, 'link'));
  }

  static fromId(id: number): BpfLink {
    return new BpfLink(addon().fdById('link', checkInt(id, 'id', 1, U32)));
  }

  get info(): LinkInfo {
    return addon().linkInfo(this.fd);
  }

  /** BPF_LINK_DETACH: detaches even if the link is pinned or shared. */
  detach(): void {
    addon().linkDetach(this.fd);
  }

  pin(path: string): void {
    pinFd(this.fd, path);
  }
}

// ---------------------------------------------------------------------------
// Ring buffers (BPF_MAP_TYPE_RINGBUF)
// ---------------------------------------------------------------------------

export interface RingBufferOptions {
  /** Max records delivered per wakeup before yielding to the event loop (default 1024, at most 2^20). */
  batch?: number;
  /**
   * Called when asynchronous delivery (after start()) fails: onRecord threw,
   * or watching the ring failed. The reader has already stopped itself;
   * start() resumes it. Without onError the error is raised as an uncaught
   * exception (process 'uncaughtException'), as an EventEmitter 'error'
   * without a listener is.
   */
  onError?: (err: unknown) => void;
}

export interface RingBufferStats {
  /** Records handed to onRecord (one whose callback threw counts). */
  records: number;
  /** Times the ring's epoll fd was reported readable and a pass ran (start() only; consume() does not count). */
  wakeups: number;
  /** Records already taken from the rings but not yet delivered (after a throwing callback, stop() or a pass cut short). */
  pending: number;
}

const leakedRings = new FinalizationRegistry<NativeRingBufferHandle>((h) => {
  try {
    h.close();
  } catch {
    // Safety net only.
  }
});

function ringMapOf(map: unknown, op: string, syscall: string): { fd: number; name: string } {
  if (!(map instanceof BpfMap)) throw new TypeError(`${op}: map must be a BpfMap`);
  const info = map.info;
  if (info.type !== MapType.RINGBUF) {
    throw new BpfError(
      `${op}: map ${info.name || '(unnamed)'} (id ${info.id}) has type ${mapTypeName(info.type)}, not RINGBUF (EINVAL)`,
      { errno: EINVAL, syscall },
    );
  }
  return { fd: map.fd, name: info.name };
}

/**
 * Reads records from one or more BPF ring buffer maps (libbpf's ring_buffer).
 * Records arrive via `onRecord(data, mapName)` on the JS thread, in order per
 * map; `data` is a copy the callback may keep. With several maps, each pass
 * visits them in the order they were added.
 *
 * - consume() drains synchronously.
 * - start() watches the rings' epoll fd with libuv (a uv_poll_t on this
 *   thread's loop): no thread blocks and nothing spins. Each wakeup delivers
 *   at most `batch` records, then yields to the event loop; the rest come on
 *   the next loop iteration. A started reader keeps the process alive (like
 *   a listening socket) and stays alive itself even when unreferenced, until
 *   stop() or close().
 * - If onRecord throws, that record counts as delivered and the records taken
 *   with it stay pending, in order, for the next consume()/start(): consume()
 *   rethrows; the asynchronous path stops the reader and calls opts.onError.
 *
 * The reader maps the rings itself: the BpfMaps may be closed afterwards.
 * Records the BPF side could not reserve (ring full) are not seen here: count
 * failed bpf_ringbuf_reserve/output calls in the program.
 */
export class RingBuffer {
  readonly #handle: NativeRingBufferHandle;
  readonly #names: string[] = [];
  readonly #onRecord: (data: Buffer, mapName: string) => void;
  readonly #onError?: (err: unknown) => void;
  #closed = false;
  readonly #deliver = (data: Buffer, ring: number): void => {
    this.#onRecord(data, this.#names[ring]);
  };
  readonly #fail = (err: unknown): void => {
    if (!this.#onError) throw err;
    this.#onError(err);
  };

  constructor(map: BpfMap, onRecord: (data: Buffer, mapName: string) => void, opts: RingBufferOptions = {}) {
    if (typeof onRecord !== 'function') throw new TypeError('RingBuffer: onRecord must be a function');
    if (typeof opts !== 'object' || opts === null) throw new TypeError('RingBuffer: opts must be an object');
    if (opts.onError !== undefined && typeof opts.onError !== 'function')
      throw new TypeError('RingBuffer: opts.onError must be a function');
    const batch = optInt(opts.batch, 'batch', 1, 1 << 20, 1024);
    const { fd, name } = ringMapOf(map, 'RingBuffer', 'ring_buffer__new');
    this.#onRecord = onRecord;
    this.#onError = opts.onError;
    this.#handle = new (addon().NativeRingBuffer)(fd, batch);
    this.#names.push(name);
    leakedRings.register(this, this.#handle, this);
  }

  #open(op: string): NativeRingBufferHandle {
    if (this.#closed) {
      throw new BpfError(`RingBuffer.${op}: the reader is closed (EBADF)`, { errno: EBADF, syscall: op });
    }
    return this.#handle;
  }

  /** Adds another ring to this reader (ring_buffer__add); allowed while started. */
  add(map: BpfMap): void {
    const h = this.#open('add');
    const { fd, name } = ringMapOf(map, 'RingBuffer.add', 'ring_buffer__add');
    h.add(fd);
    this.#names.push(name);
  }

  /**
   * Drains what is there now, synchronously (in passes of `batch`, until a
   * pass finds the rings empty, at most 64 passes so a producer as fast as
   * JS cannot keep it here forever); returns the number of records delivered.
   * An exception from onRecord propagates (see the class comment). Must not
   * be called from inside onRecord.
   */
  consume(): number {
    return this.#open('consume').consume(this.#deliver);
  }

  /** Starts asynchronous delivery; idempotent. */
  start(): void {
    const h = this.#open('start');
    // Pending records from an interrupted pass: the ring may be empty and
    // never wake us, so run one pass soon (never synchronously from start()).
    if (h.start(this.#deliver, this.#fail)) setImmediate(() => h.kick());
  }

  /** Stops asynchronous delivery; no callback runs after it returns (unless consume() is called). Idempotent. */
  stop(): void {
    if (!this.#closed) this.#handle.stop();
  }

  /** Stops, and frees the rings' mappings and the epoll fd. Idempotent; pending records are dropped. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    leakedRings.unregister(this);
    this.#handle.close();
  }

  get running(): boolean {
    return !this.#closed && this.#handle.stats().running;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Names of the maps read, in the order they were added. */
  get mapNames(): string[] {
    return [...this.#names];
  }

  get stats(): RingBufferStats {
    const s = this.#handle.stats();
    return { records: s.records, wakeups: s.wakeups, pending: s.pending };
  }
}

// ---------------------------------------------------------------------------
// Misc
// ---------------------------------------------------------------------------

const BPF_FS_MAGIC = 0xcafe4a11;

/** Removes a bpffs pin. A missing path is a BpfError with code ENOENT; a path outside bpffs is refused. */
export function unpin(path: string): void {
  checkString(path, 'path');
  let type: number;
  try {
    type = statfsSync(path).type;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const errno = typeof e.errno === 'number' ? Math.abs(e.errno) : ENOENT;
    throw new BpfError(`unpin ${path}: ${e.message}`, { errno, code: e.code, syscall: 'statfs' });
  }
  if (type !== BPF_FS_MAGIC) {
    throw new BpfError(`unpin ${path}: not on a bpf filesystem (EINVAL)`, { errno: EINVAL, syscall: 'statfs' });
  }
  try {
    unlinkSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const errno = typeof e.errno === 'number' ? Math.abs(e.errno) : EINVAL;
    throw new BpfError(`unpin ${path}: ${e.message}`, { errno, code: e.code, syscall: 'unlink' });
  }
}

let cpus: number | undefined;
/** Number of possible CPUs (the per-CPU value stride), from /sys/devices/system/cpu/possible. */
export function possibleCpus(): number {
  cpus ??= addon().possibleCpus();
  return cpus;
}

/** A network namespace: /run/netns/NAME, /proc/PID/ns/net, or a bare NAME (= /run/netns/NAME). */
export type NetnsRef = string;

/** if_nametoindex, inside `netns` when given. An unknown name is a BpfError (ENODEV). */
export function ifindex(name: string, netns?: NetnsRef): number {
  checkString(name, 'interface name');
  if (name.length >= 16) throw new RangeError(`interface name '${name}' is longer than 15 characters`);
  return addon().ifindex(name, netnsPath(netns));
}

function checkPoint(p: unknown): asserts p is 'ingress' | 'egress' {
  if (p !== 'ingress' && p !== 'egress') throw new TypeError(`attachPoint must be 'ingress' or 'egress', got ${String(p)}`);
}

// ---------------------------------------------------------------------------
// tc (clsact + direct-action cls_bpf) and XDP
// ---------------------------------------------------------------------------

/** Default tc filter priority and handle (as Cilium uses): one weir filter per hook, replaced in place. */
export const TC_DEFAULT_PRIORITY = 1;
export const TC_DEFAULT_HANDLE = 1;

export const tc = {
  /** Adds a clsact qdisc; an existing one is fine. */
  createHook(o: { ifindex: number; netns?: NetnsRef }): void {
    addon().tcCreateHook(checkInt(o.ifindex, 'ifindex', 1, I32), netnsPath(o.netns));
  },

  /** Removes clsact and all its filters; a missing qdisc is fine. */
  destroyHook(o: { ifindex: number; netns?: NetnsRef }): void {
    addon().tcDestroyHook(checkInt(o.ifindex, 'ifindex', 1, I32), netnsPath(o.netns));
  },

  /**
   * Attaches a direct-action cls_bpf filter (creating clsact if absent).
   * priority/handle default to 1/1. Without replace, an existing filter at
   * that priority/handle is a BpfError (EEXIST).
   */
  attach(o: {
    ifindex: number;
    attachPoint: 'ingress' | 'egress';
    prog: BpfProgram | number;
    priority?: number;
    handle?: number;
    replace?: boolean;
    netns?: NetnsRef;
  }): { priority: number; handle: number } {
    checkPoint(o.attachPoint);
    return addon().tcAttach(
      checkInt(o.ifindex, 'ifindex', 1, I32),
      o.attachPoint,
      progFdOf(o.prog),
      optInt(o.priority, 'priority', 1, 0xffff, TC_DEFAULT_PRIORITY),
      optInt(o.handle, 'handle', 1, U32, TC_DEFAULT_HANDLE),
      o.replace === true,
      netnsPath(o.netns),
    );
  },

  detach(o: { ifindex: number; attachPoint: 'ingress' | 'egress'; priority: number; handle: number; netns?: NetnsRef }): void {
    checkPoint(o.attachPoint);
    addon().tcDetach(
      checkInt(o.ifindex, 'ifindex', 1, I32),
      o.attachPoint,
      checkInt(o.priority, 'priority', 1, 0xffff),
      checkInt(o.handle, 'handle', 1, U32),
      netnsPath(o.netns),
    );
  },

  /** The program id at that priority/handle, or undefined when there is no filter (or no clsact). */
  query(o: {
    ifindex: number;
    attachPoint: 'ingress' | 'egress';
    priority: number;
    handle: number;
    netns?: NetnsRef;
  }): { progId: number } | undefined {
    checkPoint(o.attachPoint);
    const id = addon().tcQuery(
      checkInt(o.ifindex, 'ifindex', 1, I32),
      o.attachPoint,
      checkInt(o.priority, 'priority', 1, 0xffff),
      checkInt(o.handle, 'handle', 1, U32),
      netnsPath(o.netns),
    );
    return id === undefined ? undefined : { progId: id };
  },
};

function checkXdpMode(m: unknown): 'native' | 'generic' | undefined {
  if (m === undefined) return undefined;
  if (m !== 'native' && m !== 'generic') throw new TypeError(`xdp mode must be 'native' or 'generic', got ${String(m)}`);
  return m;
}

export const xdp = {
  /**
   * bpf_xdp_attach. mode: 'native' (driver, the default) or 'generic' (skb,
   * only when asked): a device without native XDP is an error naming the way
   * out, never a silent fall-back to the slower generic path. replace
   * defaults to false: an attached program is then a BpfError (EBUSY).
   */
  attach(o: { ifindex: number; prog: BpfProgram | number; mode?: 'native' | 'generic'; replace?: boolean; netns?: NetnsRef }): void {
    const mode = checkXdpMode(o.mode) ?? 'native';
    try {
      addon().xdpAttach(checkInt(o.ifindex, 'ifindex', 1, I32), progFdOf(o.prog), mode, o.replace === true, netnsPath(o.netns));
    } catch (e) {
      if (mode === 'native' && e instanceof BpfError && (e.code === 'EOPNOTSUPP' || e.code === 'ENOTSUPP')) {
        e.message += ` — the device has no native (driver) XDP; pass mode: 'generic' to use the skb path`;
      }
      throw e;
    }
  },

  /** Detaches; without a mode, whatever mode is attached. Nothing attached is fine. */
  detach(o: { ifindex: number; mode?: 'native' | 'generic'; netns?: NetnsRef }): void {
    addon().xdpDetach(checkInt(o.ifindex, 'ifindex', 1, I32), checkXdpMode(o.mode), netnsPath(o.netns));
  },

  query(o: { ifindex: number; netns?: NetnsRef }): { progId: number; mode: 'native' | 'generic' | 'offload' | 'multi' } | undefined {
    const q = addon().xdpQuery(checkInt(o.ifindex, 'ifindex', 1, I32), netnsPath(o.netns));
    return q === undefined ? undefined : { progId: q.progId, mode: q.mode };
  },
};

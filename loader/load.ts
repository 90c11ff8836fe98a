// Loading a CollectionSpec into the kernel through native/: BTF first, then
// maps (created, or reused from bpffs pins after a shape check), then
// programs with func/line info so verifier logs show C source lines.
import { existsSync } from 'node:fs';
import { BpfError, BpfMap, BpfProgram, Btf as KernelBtf, MapFlags, MapType, possibleCpus, unpin } from '../native/index.js';
import type { Collection, CollectionSpec, LoadOptions } from './collection.js';
import { pinPath } from './collection.js';
import { parseBtf } from './btf.js';
import { checkLayout, expectedLayoutOf, layoutOf } from './codec.js';
import { LoaderError } from './errors.js';
import { MapSpec, PIN_BY_NAME } from './maps.js';
import { INSN_SIZE, ProgramSpec, encodeFuncInfo, encodeLineInfo } from './programs.js';

/** Fields whose mismatch makes a pinned map unusable for a spec. */
const SHAPE_FIELDS = ['type', 'keySize', 'valueSize', 'maxEntries', 'flags'] as const;

export function checkMapCompatible(spec: MapSpec, m: BpfMap, where: string): void {
  const info = m.info;
  // The kernel adds BPF_F_RDONLY_PROG to every devmap on its own.
  const kernelAdded = spec.type === MapType.DEVMAP || spec.type === MapType.DEVMAP_HASH ? info.flags & MapFlags.RDONLY_PROG : 0;
  const want = { ...spec, flags: spec.flags | kernelAdded };
  for (const f of SHAPE_FIELDS) {
    if (info[f] !== want[f]) {
      throw new LoaderError(
        `${where}: ${f} is ${info[f]} in the existing map but ${spec[f]} in the spec for ${spec.name}; ` +
          `refusing to replace it (remove it explicitly to recreate)`,
      );
    }
  }
}

/**
 * The key and value types of an existing map, from the BTF the kernel keeps
 * for it, against the spec's: same sizes are not enough, a reordered struct
 * would be reused and misread.
 */
export function checkMapBtf(spec: CollectionSpec, ms: MapSpec, m: BpfMap, where: string): void {
  const info = m.info;
  const sides = [
    ['key', ms.btfKeyTypeId, info.btfKeyTypeId],
    ['value', ms.btfValueTypeId, info.btfValueTypeId],
  ] as const;
  if (!spec.btf || !info.btfId || sides.every(([, ours, theirs]) => !ours || !theirs)) return;
  const kernel = KernelBtf.fromId(info.btfId);
  let pinned;
  try {
    pinned = parseBtf(kernel.raw(), `${where} (kernel BTF ${info.btfId})`);
  } finally {
    kernel.close();
  }
  for (const [what, ours, theirs] of sides) {
    if (!ours || !theirs) continue;
    const a = spec.btf.resolve(ours);
    const b = pinned.resolve(theirs);
    const isAggregate = (k: string) => k === 'struct' || k === 'union';
    if (isAggregate(a.kind) && isAggregate(b.kind)) {
      try {
        checkLayout(spec.btf, ours, expectedLayoutOf(layoutOf(pinned, theirs)), { actual: 'the new object', expected: 'the existing map' });
      } catch (e) {
        throw new LoaderError(`${where}: ${what} of ${ms.name}: ${(e as Error).message}; refusing to reuse it`, { cause: e });
      }
    } else if (isAggregate(a.kind) !== isAggregate(b.kind)) {
      throw new LoaderError(
        `${where}: ${what} of ${ms.name} is ${pinned.describe(theirs)} in the existing map but ${spec.btf.describe(ours)} in the new object; refusing to reuse it`,
      );
    }
  }
}

function createMap(spec: MapSpec, btf: KernelBtf | undefined): BpfMap {
  let innerTemplate: BpfMap | undefined;
  try {
    if (spec.inner) innerTemplate = createMap(spec.inner, btf);
    const base = {
      type: spec.type,
      name: spec.name,
      keySize: spec.keySize,
      valueSize: spec.valueSize,
      maxEntries: spec.maxEntries,
      flags: spec.flags,
      innerMapFd: innerTemplate?.fd,
      numaNode: spec.numaNode,
      mapExtra: spec.mapExtra,
    };
    const withBtf = btf && (spec.btfKeyTypeId || spec.btfValueTypeId);
    try {
      return BpfMap.create(
        withBtf ? { ...base, btfFd: btf.fd, btfKeyTypeId: spec.btfKeyTypeId, btfValueTypeId: spec.btfValueTypeId } : base,
      );
    } catch (e) {
      // Some map types refuse BTF key/value types; libbpf retries without them too.
      if (!withBtf || !(e instanceof BpfError) || (e.code !== 'EINVAL' && e.code !== 'ENOTSUPP' && e.code !== 'EOPNOTSUPP')) {
        throw e;
      }
      return BpfMap.create(base);
    }
  } catch (e) {
    throw new LoaderError(`create map ${spec.name}: ${(e as Error).message}`, { cause: e });
  } finally {
    innerTemplate?.close();
  }
}

export async function loadCollection(original: CollectionSpec, opts: LoadOptions): Promise<Collection> {
  const spec = opts.constants ? original.copy() : original;
  if (opts.constants) spec.setConstants(opts.constants);
  const maps: Record<string, BpfMap> = {};
  const programs: Record<string, BpfProgram> = {};
  const newPins: string[] = [];
  let btf: KernelBtf | undefined;
  const closeAll = () => {
    for (const m of Object.values(maps)) m.close();
    for (const p of Object.values(programs)) p.close();
  };

  try {
    if (spec.kernelBtf) {
      try {
        btf = KernelBtf.load(spec.kernelBtf);
      } catch (e) {
        if (!(e instanceof BpfError)) throw e;
        throw new LoaderError(`${spec.source}: the kernel refused the object's BTF: ${e.message}`, { cause: e });
      }
    }

    const wanted = opts.programs ?? Object.keys(spec.programs);
    for (const name of wanted) {
      if (!spec.programs[name]) throw new LoaderError(`${spec.source}: no program named ${name} (programs: ${Object.keys(spec.programs).join(', ')})`);
    }

    // Maps. Byte contents are written only into maps this load created.
    const created = new Set<string>();
    for (const declared of Object.values(spec.maps)) {
      // A perf event array without max_entries gets one slot per CPU, as in libbpf.
      const ms = declared.type === MapType.PERF_EVENT_ARRAY && !declared.maxEntries ? { ...declared, maxEntries: possibleCpus() } : declared;
      const replacement = opts.mapReplacements?.[ms.name];
      if (replacement) {
        checkMapCompatible(ms, replacement, `replacement for map ${ms.name}`);
        checkMapBtf(spec, ms, replacement, `replacement for map ${ms.name}`);
        // Our own fd: closing the collection must not close the caller's handle.
        maps[ms.name] = replacement.dup();
        continue;
      }
      if (ms.pinning === PIN_BY_NAME) {
        if (!opts.pinRoot) throw new LoaderError(`${spec.source}: map ${ms.name} is pinned by name but no pinRoot was given`);
        const path = pinPath(opts.pinRoot, ms.name);
        if (existsSync(path)) {
          const m = BpfMap.fromPin(path);
          try {
            checkMapCompatible(ms, m, `pinned map ${path}`);
            checkMapBtf(spec, ms, m, `pinned map ${path}`);
          } catch (e) {
            m.close();
            throw e;
          }
          maps[ms.name] = m;
          continue;
        }
      }
      maps[ms.name] = createMap(ms, btf);
      created.add(ms.name);
    }
    for (const name of created) {
      const ms = spec.maps[name];
      const m = maps[name];
      for (const c of ms.contents) if (Buffer.isBuffer(c.value)) m.update(c.key, c.value);
      // Frozen before any program loads: the verifier treats a frozen read-only
      // map's bytes as known constants and prunes dead branches with them.
      if (ms.freeze) m.freeze();
    }

    for (const name of wanted) programs[name] = await loadProgram(spec, spec.programs[name], maps, btf, opts.logLevel ?? 0);

    // Slots that hold other maps or programs, once those exist: in every map,
    // reused pins included, so an upgrade's tail calls reach the new programs.
    for (const ms of Object.values(spec.maps)) {
      const name = ms.name;
      for (const c of ms.contents) {
        if (Buffer.isBuffer(c.value)) continue;
        const target = 'map' in c.value ? maps[c.value.map] : programs[c.value.program];
        if (!target) continue; // a program not loaded in this subset
        const fd = Buffer.alloc(4);
        fd.writeUInt32LE(target.fd);
        maps[name].update(c.key, fd);
      }
    }
    for (const name of created) {
      const ms = spec.maps[name];
      if (ms.pinning === PIN_BY_NAME) {
        const path = pinPath(opts.pinRoot!, name);
        maps[name].pin(path);
        newPins.push(path);
      }
    }
  } catch (e) {
    closeAll();
    for (const p of newPins) {
      try {
        unpin(p);
      } catch {
        /* already gone */
      }
    }
    throw e;
  } finally {
    btf?.close();
  }

  return {
    maps,
    programs,
    close() {
      closeAll();
    },
  };
}

async function loadProgram(
  spec: CollectionSpec,
  p: ProgramSpec,
  maps: Record<string, BpfMap>,
  btf: KernelBtf | undefined,
  logLevel: number,
): Promise<BpfProgram> {
  const insns = Buffer.from(p.instructions);
  for (const r of p.mapRefs) {
    insns.writeInt32LE(maps[r.map].fd, r.insn * INSN_SIZE + 4);
  }
  const debug = btf && p.funcInfo.length > 0;
  try {
    return await BpfProgram.load({
      type: p.type,
      name: p.name,
      expectedAttachType: p.attachType,
      flags: p.flags,
      license: p.license,
      insns,
      btfFd: debug ? btf.fd : undefined,
      funcInfo: debug ? encodeFuncInfo(p.funcInfo) : undefined,
      funcInfoRecSize: debug ? 8 : undefined,
      lineInfo: debug && p.lineInfo.length ? encodeLineInfo(p.lineInfo) : undefined,
      lineInfoRecSize: debug && p.lineInfo.length ? 16 : undefined,
      logLevel,
    });
  } catch (e) {
    const err = e as BpfError;
    const summary = err.log ? summarizeVerifierLog(err.log) : '';
    const wrapped = new LoaderError(
      `${spec.source}: program ${p.name} (section ${p.section})${summary ? `: ${summary}` : ''}\n${err.message}`,
      { cause: e },
    );
    Object.assign(wrapped, { errno: err.errno, code: err.code, log: err.log });
    throw wrapped;
  }
}

/**
 * The verifier's complaint and the C line it was on, for a first line a
 * person can act on: "R0 invalid mem access 'map_value_or_null' at reject.c:19".
 */
export function summarizeVerifierLog(log: string): string {
  const lines = log.split('\n').map((l) => l.trimEnd()).filter(Boolean);
  let complaint = '';
  let at = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i];
    if (/^(processed \d+ insns|verification time|stack depth|-- BEGIN PROG LOAD LOG|-- END PROG LOAD LOG)/.test(l)) continue;
    complaint = l;
    at = i;
    break;
  }
  if (!complaint) return '';
  for (let i = at; i >= 0; i--) {
    const m = /^; .* @ (\S+:\d+)$/.exec(lines[i]);
    if (m && !m[1].endsWith(':0')) return `${complaint} at ${m[1]}`;
  }
  return complaint;
}

// `weir map list` and `weir map dump NAME`: any map pinned under the node's
// pin root, whatever its type, decoded through BTF.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BpfError, BpfMap, MapType, mapTypeName } from '../../../native/index.js';
import { CliError, globals, requirePinRoot, type GlobalOptions } from '../context.js';
import { decoderFor, type Shown } from '../decode.js';
import { percent, table, toJson, write } from '../format.js';

export interface MapSummary {
  name: string;
  id: number;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** null for a ring buffer, which has no entries. */
  entries: number | null;
  /** entries / maxEntries, 0..1 (null with entries). */
  fill: number | null;
  /** How entries were counted: keys present, or non-zero slots of an array. */
  counted: 'keys' | 'non-zero slots' | 'n/a';
}

const ARRAYS = new Set<number>([MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.ARRAY_OF_MAPS]);

/** Entries in `m`: keys present (hash, LRU, LPM, hash-of-maps); non-zero slots for arrays, whose every slot always exists. */
export function countEntries(m: BpfMap): Pick<MapSummary, 'entries' | 'counted'> {
  const info = m.info;
  if (info.type === MapType.RINGBUF || info.type === MapType.USER_RINGBUF) return { entries: null, counted: 'n/a' };
  let n = 0;
  if (ARRAYS.has(info.type)) {
    const k = Buffer.alloc(4);
    for (let i = 0; i < info.maxEntries; i++) {
      k.writeUInt32LE(i);
      const v = m.lookup(k);
      if (v && v.some((b) => b !== 0)) n++;
    }
    return { entries: n, counted: 'non-zero slots' };
  }
  // A key deleted under our feet restarts the walk; the cap keeps a busy map from looping forever.
  for (let k = m.nextKey(); k !== undefined && n < info.maxEntries; k = m.nextKey(k)) n++;
  return { entries: n, counted: 'keys' };
}

/** The maps pinned directly under `root` (other pins and folders are skipped). */
export function pinnedMaps(root: string): Array<{ name: string; map: BpfMap }> {
  const out: Array<{ name: string; map: BpfMap }> = [];
  for (const name of readdirSync(root).sort()) {
    try {
      out.push({ name, map: BpfMap.fromPin(join(root, name)) });
    } catch (e) {
      if (!(e instanceof BpfError)) throw e; // a program/link pin or a folder: not a map
    }
  }
  return out;
}

export function summarize(name: string, m: BpfMap): MapSummary {
  const i = m.info;
  const { entries, counted } = countEntries(m);
  return {
    name,
    id: i.id,
    type: mapTypeName(i.type),
    keySize: i.keySize,
    valueSize: i.valueSize,
    maxEntries: i.maxEntries,
    entries,
    fill: entries === null ? null : entries / i.maxEntries,
    counted,
  };
}

export function mapSummaries(root: string): MapSummary[] {
  return pinnedMaps(root).map(({ name, map }) => {
    try {
      return summarize(name, map);
    } finally {
      map.close();
    }
  });
}

export function mapTable(list: MapSummary[]): string {
  return table(
    ['NAME', 'TYPE', 'KEY', 'VALUE', 'MAX', 'ENTRIES', 'FILL', 'ID'],
    list.map((s) => [
      s.name,
      s.type,
      `${s.keySize}B`,
      `${s.valueSize}B`,
      s.maxEntries,
      s.entries === null ? '-' : s.counted === 'keys' ? String(s.entries) : `${s.entries} (non-zero)`,
      s.entries === null ? '-' : percent(s.entries, s.maxEntries),
      s.id,
    ]),
  );
}

function list(g: GlobalOptions): void {
  const root = requirePinRoot(g);
  const maps = mapSummaries(root);
  if (g.output === 'json') write(toJson({ pinRoot: root, maps }));
  else write(`maps pinned under ${root}\n` + mapTable(maps));
}

/** "weir_svc4", or the short "svc4". */
function resolveName(root: string, name: string): string {
  const names = pinnedMaps(root).map((p) => {
    p.map.close();
    return p.name;
  });
  for (const n of [name, `weir_${name}`]) if (names.includes(n)) return n;
  throw new CliError(`no map named '${name}' under ${root}; pinned maps: ${names.join(', ') || '(none)'}`);
}

/** One line for a table cell: field=value pairs, lists comma-separated. */
export function inline(v: Shown): string {
  if (Array.isArray(v)) return v.length ? v.map(inline).join(',') : '-';
  if (v && typeof v === 'object') {
    return Object.entries(v)
      .map(([k, x]) => (x && typeof x === 'object' && !Array.isArray(x) ? `${k}={${inline(x)}}` : `${k}=${inline(x)}`))
      .join(' ');
  }
  return String(v);
}

function dump(g: GlobalOptions, name: string, o: { raw?: boolean }): void {
  const root = requirePinRoot(g);
  const pin = resolveName(root, name);
  const m = BpfMap.fromPin(join(root, pin));
  try {
    const info = m.info;
    if (info.type === MapType.RINGBUF || info.type === MapType.USER_RINGBUF) {
      throw new CliError(`${pin} is a ring buffer: it streams events and holds no entries to dump (weir monitor will read it)`);
    }
    const arrays = ARRAYS.has(info.type);
    const rawEntries: Array<[Buffer, Buffer]> = [];
    let all: Iterable<[Buffer, Buffer]>;
    try {
      all = m.lookupBatch(); // a few syscalls for a large table
    } catch {
      all = m.entries(); // LPM tries and older kernels: key by key
    }
    for (const [k, v] of all) {
      if (arrays && v.every((b) => b === 0)) continue; // every array slot exists; show the used ones
      rawEntries.push([k, v]);
    }
    const head = { map: pin, id: info.id, type: mapTypeName(info.type), maxEntries: info.maxEntries };
    if (o.raw) {
      const entries = rawEntries.map(([k, v]) => ({ key: k.toString('hex'), value: v.toString('hex') }));
      if (g.output === 'json') return write(toJson({ ...head, entries }));
      return write(`${pin}: ${entries.length} entries (raw)\n` + table(['KEY', 'VALUE'], entries.map((e) => [e.key, e.value])));
    }
    const dec = decoderFor(pin, m);
    const entries = rawEntries.map(([k, v]) => ({ key: dec.key(k), ...dec.value(v) }));
    if (g.output === 'json') return write(toJson({ ...head, decodedWith: dec.source, entries }));
    const note = arrays ? ', zero slots hidden' : '';
    write(
      `${pin}: ${entries.length} entries (decoded with ${dec.source}${note})\n` +
        table(['KEY', 'VALUE'], entries.map((e) => [inline(e.key), inline(e.value) + (e.perCpu ? `  (sum of ${e.perCpu.length} CPUs)` : '')])),
    );
  } finally {
    m.close();
  }
}

export function registerMap(program: Command): void {
  const map = program.command('map').description('the pinned BPF maps themselves');
  map
    .command('list')
    .description('every map pinned under the pin root: type, key/value size, max entries, entries and fill')
    .action((_o, cmd: Command) => list(globals(cmd)));
  map
    .command('dump')
    .description('every entry of one map, decoded field by field (weir_svc4 or just svc4)')
    .argument('<name>', 'pinned map name')
    .option('--raw', 'keys and values as hex bytes')
    .action((name: string, o: { raw?: boolean }, cmd: Command) => dump(globals(cmd), name, o));
}

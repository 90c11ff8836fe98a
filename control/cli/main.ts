// The `weir` command line. The agent, lab and map-dump commands arrive with
// their issues; today it can inspect a BPF object through the loader.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync, writeFileSync } from 'node:fs';
import { LoaderError, generateTypes, loadCollectionSpec } from '../../loader/index.js';

const HELP = `weir — Kubernetes pod network and kube-proxy replacement on eBPF

Usage:
  weir help                 show this help
  weir version              print the version
  weir inspect OBJECT.o     list the programs, maps and constants of a BPF object
                            as weir's loader reads it (add --json for JSON)
  weir gen-types OBJECT.o TYPE... [--out FILE]
                            TypeScript interfaces and layouts for C structs, unions
                            and enums from the object's BTF (like bpf2go)
  weir demo                 the foundation demo (root): two namespaces, tc and XDP
                            programs loaded by weir, real traffic counted in maps

Coming with later work: weir agent, weir lab, weir map dump, weir monitor.
`;

function version(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  for (const p of [join(root, 'package.json'), join(root, '..', 'package.json')]) {
    try {
      return JSON.parse(readFileSync(p, 'utf8')).version as string;
    } catch {
      /* try the next candidate (src vs dist layout) */
    }
  }
  return 'unknown';
}

function inspect(args: string[]): number {
  const json = args.includes('--json');
  const files = args.filter((a) => a !== '--json');
  if (files.length !== 1) {
    process.stderr.write('weir inspect: expected exactly one object file\n');
    return 2;
  }
  const spec = loadCollectionSpec(files[0]);
  const programs = Object.values(spec.programs).map((p) => ({
    name: p.name,
    section: p.section,
    kind: p.kind,
    instructions: p.instructions.length / 8,
    functions: p.functions.map((f) => f.name),
    maps: [...new Set(p.mapRefs.map((r) => r.map))],
  }));
  const maps = Object.values(spec.maps).map((m) => ({
    name: m.name,
    type: m.type,
    keySize: m.keySize,
    valueSize: m.valueSize,
    maxEntries: m.maxEntries,
    flags: m.flags,
    pinned: m.pinning === 1,
    key: m.btfKeyTypeId && spec.btf ? spec.btf.describe(m.btfKeyTypeId) : undefined,
    value: m.btfValueTypeId && spec.btf ? spec.btf.describe(m.btfValueTypeId) : undefined,
  }));
  const constants = Object.values(spec.variables)
    .filter((v) => v.constant)
    .map((v) => ({ name: v.name, size: v.size, type: spec.btf?.describe(v.typeId) }));
  if (json) {
    process.stdout.write(JSON.stringify({ source: spec.source, license: spec.license, programs, maps, constants }, null, 2) + '\n');
    return 0;
  }
  const out: string[] = [`${spec.source} (license ${spec.license || 'none'})`, '', 'programs:'];
  for (const p of programs) {
    out.push(`  ${p.name.padEnd(24)} ${p.section.padEnd(20)} ${String(p.instructions).padStart(5)} insns  calls: ${p.functions.slice(1).join(', ') || '-'}  maps: ${p.maps.join(', ') || '-'}`);
  }
  out.push('', 'maps:');
  for (const m of maps) {
    out.push(`  ${m.name.padEnd(24)} type ${String(m.type).padStart(2)}  key ${m.keySize}B${m.key ? ` (${m.key})` : ''}  value ${m.valueSize}B${m.value ? ` (${m.value})` : ''}  max ${m.maxEntries}${m.pinned ? '  pinned by name' : ''}`);
  }
  out.push('', 'constants:');
  for (const c of constants) out.push(`  ${c.name.padEnd(24)} ${c.type ?? ''} (${c.size}B)`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

function genTypes(args: string[]): number {
  const outAt = args.indexOf('--out');
  const out = outAt >= 0 ? args[outAt + 1] : undefined;
  const rest = outAt >= 0 ? [...args.slice(0, outAt), ...args.slice(outAt + 2)] : args;
  if ((outAt >= 0 && !out) || rest.length < 2) {
    process.stderr.write("weir gen-types: usage: weir gen-types OBJECT.o 'struct foo' ['enum bar' ...] [--out FILE]\n");
    return 2;
  }
  const [object, ...types] = rest;
  const spec = loadCollectionSpec(object);
  if (!spec.btf) throw new LoaderError(`${object} has no BTF (compile with -g)`);
  const text = generateTypes(spec.btf, types, { source: object });
  if (out) writeFileSync(out, text);
  else process.stdout.write(text);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        return 0;
      case 'version':
      case '--version':
        process.stdout.write(`weir ${version()}\n`);
        return 0;
      case 'inspect':
        return inspect(rest);
      case 'gen-types':
        return genTypes(rest);
      case 'demo': {
        const { runDemo } = await import('../demo/foundation.js');
        return runDemo();
      }
      default:
        process.stderr.write(`weir: unknown command '${cmd}'\n\n${HELP}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof LoaderError) {
      process.stderr.write(`weir ${cmd}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

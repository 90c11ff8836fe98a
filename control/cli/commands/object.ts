// Commands about BPF objects and the project itself: inspect, gen-types,
// demo (the foundation demo), version.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { LoaderError, generateTypes, loadCollectionSpec } from '../../../loader/index.js';
import { globals } from '../context.js';
import { toJson, write } from '../format.js';

export function version(): string {
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

function inspect(file: string, json: boolean): void {
  const spec = loadCollectionSpec(file);
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
  if (json) return write(toJson({ source: spec.source, license: spec.license, programs, maps, constants }));
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
  write(out.join('\n'));
}

function genTypes(object: string, types: string[], out?: string): void {
  const spec = loadCollectionSpec(object);
  if (!spec.btf) throw new LoaderError(`${object} has no BTF (compile with -g)`);
  const text = generateTypes(spec.btf, types, { source: object });
  if (out) writeFileSync(out, text);
  else process.stdout.write(text);
}

export function registerObject(program: Command, setExit: (code: number) => void): void {
  program
    .command('version')
    .description('print the version')
    .action(() => write(`weir ${version()}`));
  program
    .command('inspect')
    .description("list the programs, maps and constants of a BPF object as weir's loader reads it")
    .argument('<object>', 'a clang-compiled BPF object (.o)')
    .option('--json', 'JSON output (same as -o json)')
    .action((file: string, o: { json?: boolean }, cmd: Command) => inspect(file, o.json === true || globals(cmd).output === 'json'));
  program
    .command('gen-types')
    .description("TypeScript interfaces and layouts for C structs, unions and enums from an object's BTF (like bpf2go)")
    .argument('<object>', 'a BPF object with BTF (-g)')
    .argument('<types...>', "types such as 'struct foo' or 'enum bar'")
    .option('--out <file>', 'write to FILE instead of stdout')
    .action((object: string, types: string[], o: { out?: string }) => genTypes(object, types, o.out));
  program
    .command('demo')
    .description('the foundation demo (root): two namespaces, tc and XDP programs loaded by weir, real traffic counted in maps')
    .action(async () => {
      const { runDemo } = await import('../../demo/foundation.js');
      setExit(await runDemo());
    });
}

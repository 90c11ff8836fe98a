// Fixed-seed mutation fuzzing of the ELF / BTF / BTF.ext parsers: every
// mutated input must either parse or raise a LoaderError with a specific
// message (never a RangeError/TypeError, never the generic safety net,
// never a hang or an absurd allocation).
import { describe, expect, it } from 'vitest';
import { parseBtf, type Btf } from '../../../loader/btf.js';
import { parseBtfExt } from '../../../loader/btf_ext.js';
import { parseElf, SHT } from '../../../loader/elf.js';
import { LoaderError } from '../../../loader/errors.js';
import { FIXTURES, fixture } from './fixtures.js';
import { labelledMutations, mutations, mulberry32 } from './mutate.js';

// WEIR_FUZZ_SCALE=N multiplies the case counts for a longer local run.
const SCALE = Math.max(1, Number(process.env.WEIR_FUZZ_SCALE ?? 1) || 1);
const ELF_CASES = 700 * SCALE;
const BTF_CASES = 250 * SCALE;
const EXT_CASES = 150 * SCALE;

/** Use a parsed BTF the way the loader will: walk every type through every helper. */
function exerciseBtf(btf: Btf): void {
  for (const t of btf.types) {
    for (const f of [() => btf.describe(t.id), () => btf.sizeOf(t.id), () => btf.resolve(t.id)]) {
      try {
        f();
      } catch (e) {
        if (!(e instanceof LoaderError)) throw e;
      }
    }
  }
  btf.find('datasec', '.maps');
  btf.fixupDatasecs(() => 64, () => 0);
}

/** Parse a whole object and touch everything the collection would. */
function exerciseObject(buf: Buffer): void {
  const elf = parseElf(buf, 'fuzz.o');
  for (const s of elf.sections) {
    elf.relocations(s.index);
    elf.symbolsIn(s.index);
    if (s.type !== SHT.NOBITS) void s.data.length;
  }
  const btfSec = elf.section('.BTF');
  if (!btfSec) return;
  const btf = parseBtf(btfSec.data, 'fuzz.o');
  exerciseBtf(btf);
  btf.fixupDatasecs(
    (n) => elf.section(n)?.size,
    (sec, v) => {
      const s = elf.section(sec);
      return s ? elf.symbolsIn(s.index).find((x) => x.name === v)?.value : undefined;
    },
  );
  const ext = elf.section('.BTF.ext');
  if (ext) parseBtfExt(ext.data, btf, 'fuzz.o');
}

interface Tally {
  ok: number;
  rejected: number;
  bad: string[];
}

function attempt(t: Tally, label: string, fn: () => void): void {
  try {
    fn();
    t.ok++;
  } catch (e) {
    if (e instanceof LoaderError && !/unexpected parse failure/.test(e.message) && e.message.length > 0) {
      t.rejected++;
    } else {
      t.bad.push(`${label}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}\n${e.stack}` : String(e)}`);
    }
  }
}

describe('mutation fuzzing', () => {
  it('mutations() is deterministic and does not modify its input', () => {
    const buf = fixture('maps');
    const copy = Buffer.from(buf);
    const a = [...mutations(buf, 42, 50)];
    const b = [...mutations(buf, 42, 50)];
    const c = [...mutations(buf, 43, 50)];
    expect(a.length).toBe(50);
    a.forEach((x, i) => expect(x.equals(b[i])).toBe(true));
    expect(a.some((x, i) => !x.equals(c[i]))).toBe(true);
    expect(a.filter((x) => x.equals(buf)).length).toBeLessThan(5);
    expect(buf.equals(copy)).toBe(true);
    const r = mulberry32(1);
    const vals = Array.from({ length: 1000 }, r);
    expect(Math.min(...vals)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...vals)).toBeLessThan(1);
    const kinds = new Set([...labelledMutations(buf, 7, 300)].map((m) => m.kind));
    expect(kinds.size).toBe(11);
  });

  it(`${FIXTURES.length * (ELF_CASES + BTF_CASES + EXT_CASES)} mutated inputs: parse or LoaderError, nothing else`, { timeout: 60_000 * SCALE }, () => {
    const t0 = performance.now();
    const whole: Tally = { ok: 0, rejected: 0, bad: [] };
    const btfT: Tally = { ok: 0, rejected: 0, bad: [] };
    const extT: Tally = { ok: 0, rejected: 0, bad: [] };
    FIXTURES.forEach((name, fi) => {
      const buf = fixture(name);
      let i = 0;
      for (const m of mutations(buf, 0x5eed0000 + fi, ELF_CASES)) attempt(whole, `${name} elf seed=${0x5eed0000 + fi} case ${i++}`, () => exerciseObject(m));

      const elf = parseElf(buf, name);
      const btfBytes = elf.section('.BTF')!.data;
      const extBytes = elf.section('.BTF.ext')!.data;
      const goodBtf = parseBtf(btfBytes, name);
      i = 0;
      for (const m of mutations(btfBytes, 0xb7f00000 + fi, BTF_CASES)) attempt(btfT, `${name} btf case ${i++}`, () => exerciseBtf(parseBtf(m, name)));
      i = 0;
      for (const m of mutations(extBytes, 0xe8700000 + fi, EXT_CASES)) attempt(extT, `${name} ext case ${i++}`, () => void parseBtfExt(m, goodBtf, name));
    });
    const ms = performance.now() - t0;
    const total = (x: Tally) => x.ok + x.rejected + x.bad.length;
    console.log(
      `fuzz: ${total(whole) + total(btfT) + total(extT)} cases in ${ms.toFixed(0)} ms; ` +
        `elf ok/rejected ${whole.ok}/${whole.rejected}, btf ${btfT.ok}/${btfT.rejected}, btf.ext ${extT.ok}/${extT.rejected}`,
    );
    expect([...whole.bad, ...btfT.bad, ...extT.bad].slice(0, 5)).toEqual([]);
    expect(total(whole) + total(btfT) + total(extT)).toBeGreaterThanOrEqual(5000);
    // the mutations must reach past the first checks: plenty both accepted and rejected
    for (const x of [whole, btfT, extT]) {
      expect(x.ok).toBeGreaterThan(total(x) * 0.05);
      expect(x.rejected).toBeGreaterThan(total(x) * 0.05);
    }
    expect(ms).toBeLessThan(20_000 * SCALE);
  });
});

// Programs and BTF through the native facade (root).
import { afterAll, describe, expect, it } from 'vitest';
import { BpfError, BpfMap, BpfProgram, Btf, MapType, ProgType, XdpAction } from '../../native/index.js';
import { R0, asm, counterProg, fdTracker, prog, requireKernel, retProg, u32, udpFrame } from './helpers.js';

const enabled = requireKernel();

const { track, closeAll } = fdTracker();

/** A BTF blob with one type: [1] INT 'int' size 4, 32 bits, signed. */
function intBtf(opts: { bits?: number; magic?: number } = {}): Buffer {
  const strings = Buffer.from('\0int\0', 'latin1');
  const types = Buffer.alloc(16);
  types.writeUInt32LE(1, 0); // name_off -> "int"
  types.writeUInt32LE(1 << 24, 4); // info: kind INT, vlen 0
  types.writeUInt32LE(4, 8); // size
  types.writeUInt32LE((1 << 24) | (opts.bits ?? 32), 12); // BTF_INT_SIGNED, offset 0, bits
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(opts.magic ?? 0xeb9f, 0);
  hdr.writeUInt8(1, 2); // version
  hdr.writeUInt8(0, 3); // flags
  hdr.writeUInt32LE(24, 4); // hdr_len
  hdr.writeUInt32LE(0, 8); // type_off
  hdr.writeUInt32LE(types.length, 12); // type_len
  hdr.writeUInt32LE(types.length, 16); // str_off
  hdr.writeUInt32LE(strings.length, 20); // str_len
  return Buffer.concat([hdr, types, strings]);
}

describe.skipIf(!enabled)('Btf', () => {
  afterAll(() => {
    closeAll();
  });

  it('loads a hand-built blob with one int type, and maps can use it', () => {
    const btf = track(Btf.load(intBtf()));
    expect(btf.id).toBeGreaterThan(0);
    const m = track(
      BpfMap.create({
        type: MapType.ARRAY,
        name: 'weirtest_btf',
        keySize: 4,
        valueSize: 4,
        maxEntries: 1,
        btfFd: btf.fd,
        btfKeyTypeId: 1,
        btfValueTypeId: 1,
      }),
    );
    expect(m.info).toMatchObject({ btfId: btf.id, btfKeyTypeId: 1, btfValueTypeId: 1 });
    expect(Btf.fromId(btf.id).id).toBe(btf.id);
  });

  it('a corrupt blob fails with the kernel BTF log in the message and .log', () => {
    let err: BpfError | undefined;
    try {
      Btf.load(intBtf({ bits: 64 })); // 64 bits in a 4-byte int is invalid
    } catch (e) {
      err = e as BpfError;
    }
    expect(err).toBeInstanceOf(BpfError);
    expect(err!.code).toBe('EINVAL');
    expect(err!.syscall).toBe('bpf_btf_load');
    expect(err!.log).toBeTruthy();
    expect(err!.log).toMatch(/int/i);
    expect(err!.message).toContain('BTF log:');
    expect(err!.message).toContain(err!.log!.trim().split('\n').pop());

    expect(() => Btf.load(intBtf({ magic: 0x1234 }))).toThrow(expect.objectContaining({ syscall: 'bpf_btf_load' }));
    expect(() => Btf.load(Buffer.alloc(0))).toThrow(TypeError);
  });
});

describe.skipIf(!enabled)('BpfProgram', () => {
  afterAll(() => {
    closeAll();
  });

  it('binds the maps it was given even if their handles close during the load', async () => {
    const original = BpfMap.create({ type: MapType.ARRAY, name: 'weirtest_orig', keySize: 4, valueSize: 8, maxEntries: 1 });
    const originalId = original.info.id;
    const loading = BpfProgram.load({ type: ProgType.XDP, license: 'GPL', insns: counterProg(original.fd, XdpAction.PASS) });
    original.close(); // the fd number is free again...
    const impostor = track(BpfMap.create({ type: MapType.ARRAY, name: 'weirtest_imp', keySize: 4, valueSize: 8, maxEntries: 1 }));
    const p = track(await loading);
    // ...but the program holds the map that was meant, not whatever took the number.
    expect(p.info.mapIds).toEqual([originalId]);
    expect(p.info.mapIds).not.toContain(impostor.info.id);
  });

  it('loads an XDP program and test-runs it', async () => {
    const p = track(await BpfProgram.load({ type: ProgType.XDP, name: 'weirtest_pass', license: 'GPL', insns: retProg(XdpAction.PASS) }));
    expect(p.log).toBe('');
    const info = p.info;
    expect(info).toMatchObject({ name: 'weirtest_pass', type: ProgType.XDP, mapIds: [] });
    expect(info.tag).toMatch(/^[0-9a-f]{16}$/);
    const frame = udpFrame();
    const r = await p.testRun({ data: frame, repeat: 3 });
    expect(r.retval).toBe(XdpAction.PASS);
    expect(r.data).toEqual(frame);
    expect(r.durationNs).toBeGreaterThanOrEqual(0);

    const drop = track(await BpfProgram.load({ type: ProgType.XDP, license: 'GPL', insns: retProg(XdpAction.DROP) }));
    expect((await drop.testRun({ data: frame })).retval).toBe(XdpAction.DROP);
  });

  it('test-runs a program that updates a map, and lists the map in its info', async () => {
    const counters = track(BpfMap.create({ type: MapType.ARRAY, name: 'weirtest_cnt', keySize: 4, valueSize: 8, maxEntries: 1 }));
    const p = track(
      await BpfProgram.load({ type: ProgType.SCHED_CLS, name: 'weirtest_count', license: 'GPL', insns: counterProg(counters.fd, 0) }),
    );
    expect(p.info.mapIds).toEqual([counters.info.id]);
    const r = await p.testRun({ data: udpFrame(), repeat: 5 });
    expect(r.retval).toBe(0);
    expect(counters.lookup(u32(0))?.readBigUInt64LE()).toBe(5n);
  });

  it('a rejected program carries the full verifier log', async () => {
    // `exit` with r0 never written: the verifier says "R0 !read_ok".
    let err: BpfError | undefined;
    try {
      await BpfProgram.load({ type: ProgType.XDP, name: 'weirtest_bad', license: 'GPL', insns: prog(asm.exit()) });
    } catch (e) {
      err = e as BpfError;
    }
    expect(err).toBeInstanceOf(BpfError);
    expect(err!.code).toBe('EACCES');
    expect(err!.syscall).toBe('bpf_prog_load');
    expect(err!.message).toMatch(/^load program weirtest_bad: Permission denied \(EACCES\)\nverifier log:\n/);
    expect(err!.log).toContain('R0 !read_ok');
    expect(err!.message).toContain(err!.log!);

    // An out-of-range jump is rejected before verification proper.
    await expect(
      BpfProgram.load({ type: ProgType.XDP, license: 'GPL', insns: prog(asm.jeqImm(R0, 0, 10), asm.exit()) }),
    ).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('verifier log:') });
  });

  it('keeps the log of a successful load with logLevel > 0, growing a too-small buffer', async () => {
    const p = track(
      await BpfProgram.load({ type: ProgType.XDP, license: 'GPL', insns: retProg(XdpAction.PASS), logLevel: 2, logSize: 128 }),
    );
    expect(p.log).toContain('processed 2 insns');
  });

  it('validates options before the kernel sees them', async () => {
    await expect(BpfProgram.load({ type: ProgType.XDP, license: 'GPL', insns: Buffer.alloc(7) })).rejects.toThrow(RangeError);
    await expect(
      BpfProgram.load({ type: ProgType.XDP, license: '', insns: retProg(2) }),
    ).rejects.toThrow(TypeError);
  });

  it('pins a program and reopens it by id; close is idempotent', async () => {
    const p = await BpfProgram.load({ type: ProgType.XDP, license: 'GPL', insns: retProg(XdpAction.PASS) });
    const id = p.info.id;
    const again = BpfProgram.fromId(id);
    expect(again.info.id).toBe(id);
    p.close();
    p.close();
    expect(p.closed).toBe(true);
    await expect(Promise.resolve().then(() => p.testRun({ data: udpFrame() }))).rejects.toMatchObject({ code: 'EBADF' });
    expect((await again.testRun({ data: udpFrame() })).retval).toBe(XdpAction.PASS);
    again.close();
  });
});

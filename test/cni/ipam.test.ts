// IPAM: addresses from the node's pod CIDR, persisted so a restart never hands
// out a live address twice; round-robin reuse; exhaustion; GC; damaged state.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CniError, ErrorCode } from '../../control/cni/errors.js';
import { Ipam } from '../../control/ipam/allocator.js';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'h4-ipam-'));
  file = join(dir, 'ipam.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const owner = (n: number) => ({ containerId: `c${n}`, ifname: 'eth0' });

describe('Ipam', () => {
  it('hands out addresses after the gateway, never the network, gateway or broadcast address', () => {
    const ipam = Ipam.open({ cidr: '10.244.1.0/29', stateFile: file });
    expect(ipam.gateway).toBe('10.244.1.1');
    expect(ipam.capacity).toBe(5);
    const got = [1, 2, 3, 4, 5].map((n) => ipam.allocate(owner(n)).ip);
    expect(got).toEqual(['10.244.1.2', '10.244.1.3', '10.244.1.4', '10.244.1.5', '10.244.1.6']);
    expect(ipam.free).toBe(0);
  });

  it('is idempotent per (container id, ifname) and records the pod', () => {
    const ipam = Ipam.open({ cidr: '10.244.1.0/24', stateFile: file });
    const a = ipam.allocate({ ...owner(1), podNamespace: 'default', podName: 'web' });
    expect(ipam.allocate(owner(1)).ip).toBe(a.ip);
    expect(ipam.allocate({ containerId: 'c1', ifname: 'net1' }).ip).not.toBe(a.ip);
    expect(ipam.get(owner(1))).toMatchObject({ ip: a.ip, podNamespace: 'default', podName: 'web' });
    expect(ipam.byIp(a.ip)?.containerId).toBe('c1');
  });

  it('persists every change: a reopened allocator (agent restart) keeps live addresses and its cursor', () => {
    const a = Ipam.open({ cidr: '10.244.1.0/24', stateFile: file });
    const live = [1, 2, 3].map((n) => a.allocate(owner(n)).ip);
    a.release(owner(2));
    const b = Ipam.open({ cidr: '10.244.1.0/24', stateFile: file });
    expect(b.list().map((x) => x.ip).sort()).toEqual([live[0], live[2]].sort());
    const fresh = b.allocate(owner(4)).ip;
    expect([...live]).not.toContain(fresh); // not even the released one: round-robin
    expect(fresh).toBe('10.244.1.5');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, cidr: '10.244.1.0/24', last: '10.244.1.5' });
    expect(readdirSync(dir)).toEqual(['ipam.json']); // no temp file left behind
  });

  it('reuses a released address only after going round the CIDR', () => {
    const ipam = Ipam.open({ cidr: '10.244.1.0/29', stateFile: file });
    for (let n = 1; n <= 5; n++) ipam.allocate(owner(n));
    ipam.release(owner(2)); // .3
    expect(ipam.allocate(owner(6)).ip).toBe('10.244.1.3');
  });

  it('a /30 holds one pod; the next ADD gets code 102 and nothing changes', () => {
    const ipam = Ipam.open({ cidr: '10.244.9.0/30', stateFile: file });
    expect(ipam.allocate(owner(1)).ip).toBe('10.244.9.2');
    const before = readFileSync(file, 'utf8');
    let err: CniError | undefined;
    try {
      ipam.allocate(owner(2));
    } catch (e) {
      err = e as CniError;
    }
    expect(err?.code).toBe(ErrorCode.PoolExhausted);
    expect(err?.message).toContain('10.244.9.0/30');
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(ipam.list()).toHaveLength(1);
  });

  it('GC (retain) frees what the runtime no longer knows, in one write', () => {
    const ipam = Ipam.open({ cidr: '10.244.1.0/24', stateFile: file });
    for (let n = 1; n <= 4; n++) ipam.allocate(owner(n));
    const freed = ipam.retain((a) => a.containerId === 'c2' || a.containerId === 'c4');
    expect(freed.map((a) => a.containerId).sort()).toEqual(['c1', 'c3']);
    expect(Ipam.open({ cidr: '10.244.1.0/24', stateFile: file }).list().map((a) => a.containerId).sort()).toEqual(['c2', 'c4']);
  });

  it('honours a configured gateway and reserved addresses', () => {
    const ipam = Ipam.open({ cidr: '10.244.1.0/29', stateFile: file, gateway: '10.244.1.6', reserved: ['10.244.1.1', '192.0.2.1'] });
    expect(ipam.capacity).toBe(4);
    expect([1, 2, 3, 4].map((n) => ipam.allocate(owner(n)).ip)).toEqual(['10.244.1.2', '10.244.1.3', '10.244.1.4', '10.244.1.5']);
  });

  it('refuses a damaged state file or one holding live addresses of another CIDR, naming the file and field', () => {
    writeFileSync(file, '{"version": 1, "cidr": "10.244.1.0/24", "allocations": {');
    expect(() => Ipam.open({ cidr: '10.244.1.0/24', stateFile: file })).toThrow(/ipam\.json: not valid JSON/);
    writeFileSync(file, JSON.stringify({ version: 1, cidr: '10.244.1.0/24', allocations: { '10.244.1.7': { containerId: 'c', ifname: 'eth0' } } }));
    expect(() => Ipam.open({ cidr: '10.244.2.0/24', stateFile: file })).toThrow(/field cidr is 10\.244\.1\.0\/24 with 1 live allocation/);
    writeFileSync(file, JSON.stringify({ version: 1, cidr: '10.244.1.0/24', allocations: {} }));
    expect(Ipam.open({ cidr: '10.244.2.0/24', stateFile: file }).allocate(owner(1)).ip).toBe('10.244.2.2');
    expect(() => Ipam.open({ cidr: '10.244.1.5/24', stateFile: join(dir, 'x.json') })).toThrow(/host bits set/);
  });

  it('keeps memory and disk in step when the state cannot be written (code 5)', () => {
    const ipam = Ipam.open({ cidr: '10.244.1.0/24', stateFile: join(dir, 'sub', 'ipam.json') });
    ipam.allocate(owner(1));
    rmSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'sub'), 'a file where the folder was');
    let err: CniError | undefined;
    try {
      ipam.allocate(owner(2));
    } catch (e) {
      err = e as CniError;
    }
    expect(err?.code).toBe(ErrorCode.IoFailure);
    expect(ipam.list().map((a) => a.containerId)).toEqual(['c1']);
    expect(ipam.get(owner(2))).toBeUndefined();
  });
});

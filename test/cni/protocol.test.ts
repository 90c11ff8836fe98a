// The plugin <-> agent protocol without a kernel: runPlugin (the binary's whole
// behaviour, in-process) against serveCni with a recording handler. What the
// plugin sends, how agent errors and absences become CNI codes, and how the
// server treats broken or silent clients.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { serveCni, type CniHandler, type CniServer } from '../../control/agent/cni-server.js';
import { callAgent } from '../../control/cni/client.js';
import { CniError, ErrorCode } from '../../control/cni/errors.js';
import { runPlugin } from '../../control/cni/main.js';
import { encodeFrame, FrameDecoder, MAX_FRAME, WIRE_VERSION, type EndpointReply } from '../../control/cni/wire.js';
import type { StatusReport } from '../../control/endpoint/manager.js';

const reply: EndpointReply = {
  hostIfname: 'lxcaaaaaaaaaaaa',
  hostMac: '02:00:00:00:00:01',
  podIfname: 'eth0',
  podMac: '02:00:00:00:00:02',
  sandbox: '/run/netns/pod',
  mtu: 1450,
  address: '10.244.1.2/32',
  gateway: '10.244.1.1',
  routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }],
};

class Recorder implements CniHandler {
  calls: Array<[string, unknown]> = [];
  status_: StatusReport = { ready: true, endpoints: 0, freeAddresses: 10 };
  fail?: CniError | Error;
  hang = false;
  async #go<T>(op: string, arg: unknown, value: T): Promise<T> {
    this.calls.push([op, arg]);
    if (this.hang) await new Promise(() => undefined);
    if (this.fail) throw this.fail;
    return value;
  }
  add = (r: unknown) => this.#go('add', r, reply);
  del = (r: unknown) => this.#go('del', r, undefined);
  check = (r: unknown) => this.#go('check', r, undefined);
  gc = (v: unknown) => this.#go('gc', v, {});
  status = () => this.status_;
}

let dir: string;
let sock: string;
let server: CniServer | undefined;
let h: Recorder;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'h4-proto-'));
  sock = join(dir, 'cni.sock');
  h = new Recorder();
  server = await serveCni({ socketPath: sock, manager: h, readTimeoutMs: 300 });
});
afterEach(async () => {
  await server?.close(200);
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const conf = (o: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'weir', type: 'weir-cni', socketPath: sock, timeoutSeconds: 2, ...o });
const envFor = (command: string, o: Record<string, string> = {}) => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/run/netns/pod',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0',
  ...o,
});
const errOf = (stdout: string) => JSON.parse(stdout) as { cniVersion: string; code: number; msg: string; details?: string };

describe('plugin -> agent', () => {
  it('ADD sends the attachment and pod identity, and prints the result in the configured version', async () => {
    const out = await runPlugin(envFor('ADD'), conf({ cniVersion: '0.4.0' }));
    expect(out.code).toBe(0);
    expect(h.calls).toEqual([
      ['add', { containerId: 'c0ffee', ifname: 'eth0', netns: '/run/netns/pod', network: 'weir', args: { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'web-0' } }],
    ]);
    const r = JSON.parse(out.stdout);
    expect(r.cniVersion).toBe('0.4.0');
    expect(r.ips).toEqual([{ version: '4', address: '10.244.1.2/32', gateway: '10.244.1.1', interface: 1 }]);
    expect(r.interfaces[1]).toEqual({ name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/pod' });
  });

  it('CHECK and DEL pass prevResult; DEL without CNI_NETNS is fine; success prints nothing', async () => {
    const prev = { cniVersion: '1.1.0', ips: [{ address: '10.244.1.2/32', interface: 1 }] };
    const check = await runPlugin(envFor('CHECK'), conf({ prevResult: prev }));
    expect(check).toEqual({ code: 0, stdout: '', stderr: '' });
    const del = await runPlugin(envFor('DEL', { CNI_NETNS: '' }), conf({ prevResult: prev }));
    expect(del).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(h.calls).toEqual([
      ['check', { containerId: 'c0ffee', ifname: 'eth0', netns: '/run/netns/pod', prevResult: prev }],
      ['del', { containerId: 'c0ffee', ifname: 'eth0', netns: undefined }],
    ]);
  });

  it('GC sends the valid attachments', async () => {
    const out = await runPlugin({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf({ 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] }));
    expect(out.code).toBe(0);
    expect(h.calls).toEqual([['gc', [{ containerId: 'keep', ifname: 'eth0' }]]]);
  });

  it('an agent error reaches the runtime with its code, message and details', async () => {
    h.fail = new CniError(ErrorCode.PoolExhausted, 'no free pod address', 'every address of 10.244.9.0/30 is in use');
    const out = await runPlugin(envFor('ADD'), conf());
    expect(out.code).toBe(1);
    expect(errOf(out.stdout)).toEqual({ cniVersion: '1.1.0', code: 102, msg: 'no free pod address', details: 'every address of 10.244.9.0/30 is in use' });
    h.fail = new Error('boom');
    expect(errOf((await runPlugin(envFor('DEL'), conf())).stdout)).toMatchObject({ code: ErrorCode.Internal, details: 'boom' });
  });

  it('STATUS: 0 when ready, 50 with the reason when not, 51 when existing pods are affected too', async () => {
    expect((await runPlugin({ CNI_COMMAND: 'STATUS' }, conf())).code).toBe(0);
    h.status_ = { ready: false, reason: 'no free address in the pod CIDR 10.244.9.0/30', endpoints: 1, freeAddresses: 0 };
    const out = await runPlugin({ CNI_COMMAND: 'STATUS' }, conf());
    expect(out.code).toBe(1);
    expect(errOf(out.stdout)).toMatchObject({ code: 50, details: 'no free address in the pod CIDR 10.244.9.0/30' });
    h.status_ = { ready: false, reason: 'datapath not loaded', limited: true, endpoints: 3, freeAddresses: 10 };
    expect(errOf((await runPlugin({ CNI_COMMAND: 'STATUS' }, conf())).stdout)).toMatchObject({ code: 51, details: 'datapath not loaded' });
  });

  it('no agent: ADD/DEL say try again later (11), STATUS says not available (50)', async () => {
    await server!.close();
    server = undefined;
    for (const cmd of ['ADD', 'DEL', 'CHECK']) {
      const out = await runPlugin(envFor(cmd), conf());
      expect(out.code, cmd).toBe(1);
      expect(errOf(out.stdout)).toMatchObject({ code: 11, msg: 'weir agent is not running' });
      expect(errOf(out.stdout).details).toContain(sock);
    }
    expect(errOf((await runPlugin({ CNI_COMMAND: 'STATUS' }, conf())).stdout).code).toBe(50);
  });

  it('an agent that accepts but never answers is try-again-later after the configured timeout', async () => {
    h.hang = true;
    const out = await runPlugin(envFor('ADD'), conf({ timeoutSeconds: 0.3 }));
    expect(errOf(out.stdout)).toMatchObject({ code: 11, msg: 'weir agent did not answer' });
  });

  it('VERSION needs no agent and answers in the asked version when weir speaks it', async () => {
    await server!.close();
    server = undefined;
    const out = await runPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    expect(JSON.parse(out.stdout)).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    expect(JSON.parse((await runPlugin({ CNI_COMMAND: 'VERSION' }, '')).stdout).cniVersion).toBe('1.1.0');
  });

  it('bad input never reaches the agent', async () => {
    const cases: Array<[Record<string, string>, string, number]> = [
      [envFor('ADD'), '{"cniVersion": "1.1.0", "name": ', ErrorCode.DecodeFailure],
      [envFor('ADD', { CNI_NETNS: '' }), conf(), ErrorCode.InvalidEnvironment],
      [envFor('ADD'), conf({ cniVersion: '0.1.0' }), ErrorCode.IncompatibleVersion],
      [envFor('ADD'), conf({ ipam: { type: 'host-local' } }), ErrorCode.UnsupportedField],
      [envFor('ADD'), conf({ timeoutSeconds: 'soon' }), ErrorCode.InvalidConfig],
    ];
    for (const [env, stdin, code] of cases) {
      const out = await runPlugin(env, stdin);
      expect(out.code).not.toBe(0);
      expect(errOf(out.stdout).code, stdin).toBe(code);
    }
    expect(h.calls).toEqual([]);
  });
});

describe('agent socket server', () => {
  it('reads a request split across many writes', async () => {
    const frame = encodeFrame({ v: WIRE_VERSION, op: 'STATUS', network: 'weir' });
    const res = await new Promise<unknown>((resolve, reject) => {
      const s = connect(sock);
      const dec = new FrameDecoder();
      s.on('data', (c: Buffer) => dec.push(c).forEach(resolve));
      s.on('error', reject);
      s.on('connect', async () => {
        for (const b of frame) {
          s.write(Buffer.from([b]));
          await new Promise((r) => setImmediate(r));
        }
      });
    });
    expect(res).toEqual({ v: WIRE_VERSION, ok: true });
  });

  it('drops a client that sends nothing, and answers a bad frame or request with code 103', async () => {
    const closed = await new Promise<boolean>((resolve) => {
      const s = connect(sock);
      s.on('close', () => resolve(true));
      s.on('error', () => undefined);
    });
    expect(closed).toBe(true);

    const oversized = Buffer.alloc(4);
    oversized.writeUInt32BE(MAX_FRAME + 1);
    const res = await new Promise<{ code: number; details: string }>((resolve) => {
      const s = connect(sock, () => s.write(oversized));
      const dec = new FrameDecoder();
      s.on('data', (c: Buffer) => dec.push(c).forEach((m) => resolve(m as { code: number; details: string })));
    });
    expect(res).toMatchObject({ code: ErrorCode.AgentProtocol });
    expect(res.details).toMatch(/exceeds/);

    await expect(callAgent(sock, { v: 99, op: 'STATUS', network: 'weir' }, 2000)).resolves.toMatchObject({ ok: false, code: 103 });
    await expect(callAgent(sock, { v: WIRE_VERSION, op: 'ADD', network: 'weir', ifname: 'eth0', netns: '/x' }, 2000)).resolves.toMatchObject({
      ok: false,
      code: 103,
      details: 'field containerId must be a non-empty string',
    });
    expect(h.calls).toEqual([]);
  });

  it('replaces a dead agent\'s socket file, refuses a live one and a non-socket', async () => {
    await expect(serveCni({ socketPath: sock, manager: h })).rejects.toThrow(/another agent is already listening/);
    // A socket file left by a crashed process: a child binds it and is SIGKILLed (no unlink).
    const stale = join(dir, 'stale.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`]);
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(stale)).toBe(true);
    const second = await serveCni({ socketPath: stale, manager: h });
    expect((await runPlugin({ CNI_COMMAND: 'STATUS' }, conf({ socketPath: stale }))).code).toBe(0);
    await second.close();
    const plain = join(dir, 'plain');
    writeFileSync(plain, 'not a socket');
    await expect(serveCni({ socketPath: plain, manager: h })).rejects.toThrow(/is not a socket/);
  });

  it('close() waits for requests in flight and removes the socket', async () => {
    let release!: () => void;
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    h.add = async () => {
      entered();
      await new Promise<void>((r) => (release = r));
      return reply;
    };
    const pending = runPlugin(envFor('ADD'), conf());
    await inside;
    expect(server!.inFlight).toBe(1);
    const closing = server!.close();
    release();
    await closing;
    server = undefined;
    expect((await pending).code).toBe(0);
    expect(existsSync(sock)).toBe(false);
  });
});

// weir-cni: the CNI plugin binary (bin/weir-cni runs this). It validates what
// the runtime passed and asks the node's agent, over a unix socket, to do the
// work; IPAM, interfaces and maps have one owner, the agent. Keep imports
// light: this runs once per pod operation.
import { callAgent } from './client.js';
import { decodeStdin, parseEnv, parseNetConf, replyVersion } from './config.js';
import { asCniError, CniError, ErrorCode } from './errors.js';
import { formatResult, SUPPORTED_VERSIONS, type CniIpConfig, type CniResult } from './spec.js';
import { WIRE_VERSION, type AgentRequest, type EndpointReply } from './wire.js';

export interface PluginOutput {
  /** Process exit code: 0 on success. */
  code: number;
  stdout: string;
  stderr: string;
}

/** The 1.1.0 result for an endpoint the agent made. */
export function endpointResult(ep: EndpointReply, dns?: CniResult['dns']): Omit<CniResult, 'cniVersion'> {
  const ip: CniIpConfig = { address: ep.address, gateway: ep.gateway, interface: 1 };
  return {
    interfaces: [
      { name: ep.hostIfname, mac: ep.hostMac },
      { name: ep.podIfname, mac: ep.podMac, mtu: ep.mtu, sandbox: ep.sandbox },
    ],
    ips: [ip],
    routes: ep.routes,
    dns: dns ?? {},
  };
}

/** One plugin invocation, as a function (the binary's whole behaviour, testable in-process). */
export async function runPlugin(env: NodeJS.ProcessEnv, stdin: string): Promise<PluginOutput> {
  // Errors answer in the configuration's version when it is one weir speaks.
  let raw: Record<string, unknown> | undefined;
  try {
    raw = decodeStdin(stdin);
  } catch {
    /* reported below, once we know the command */
  }
  const version = replyVersion(raw);
  try {
    const e = parseEnv(env);
    if (e.command === 'VERSION') {
      return ok(JSON.stringify({ cniVersion: version, supportedVersions: [...SUPPORTED_VERSIONS] }));
    }
    const conf = parseNetConf(raw ?? decodeStdin(stdin), e.command);
    const req: AgentRequest = { v: WIRE_VERSION, op: e.command, network: conf.name };
    if (e.command !== 'STATUS' && e.command !== 'GC') {
      req.containerId = e.containerId;
      req.ifname = e.ifname;
      if (e.netns) req.netns = e.netns;
      req.args = e.args;
      if (conf.prevResult !== undefined) req.prevResult = conf.prevResult;
    }
    if (e.command === 'GC') req.validAttachments = conf.validAttachments;

    let res;
    try {
      res = await callAgent(conf.socketPath, req, conf.timeoutMs);
    } catch (err) {
      // STATUS has its own codes: 50 = cannot take ADDs.
      if (e.command === 'STATUS') {
        const c = asCniError(err);
        throw new CniError(ErrorCode.NotAvailable, 'weir agent is not available', c.details || c.msg);
      }
      throw err;
    }
    if (!res.ok) throw new CniError(res.code, res.msg, res.details ?? '');
    if (e.command !== 'ADD') return ok('');
    if (!res.endpoint) throw new CniError(ErrorCode.AgentProtocol, 'unreadable answer from the weir agent', 'ADD succeeded without an endpoint');
    return ok(JSON.stringify(formatResult(endpointResult(res.endpoint, conf.dns), conf.cniVersion)));
  } catch (err) {
    const c = asCniError(err, ErrorCode.Internal, 'weir-cni failed');
    return { code: 1, stdout: JSON.stringify(c.toJSON(version)), stderr: `weir-cni: ${c.message}\n` };
  }
}

const ok = (stdout: string): PluginOutput => ({ code: 0, stdout, stderr: '' });

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Entry point of the binary. */
export async function main(): Promise<number> {
  let stdin = '';
  try {
    stdin = await readStdin();
  } catch (e) {
    const c = new CniError(ErrorCode.IoFailure, 'cannot read stdin', (e as Error).message);
    process.stdout.write(JSON.stringify(c.toJSON('1.1.0')));
    return 1;
  }
  const out = await runPlugin(process.env, stdin);
  if (out.stdout) process.stdout.write(out.stdout);
  if (out.stderr) process.stderr.write(out.stderr);
  return out.code;
}

// What a runtime hands the plugin: CNI_* environment variables and the
// network configuration on stdin. Every check names the variable or field and
// carries the spec's error code, so a bad conflist is fixed from the message.
import { CniError, ErrorCode } from './errors.js';
import { COMMANDS, compareVersions, isSupported, SUPPORTED_VERSIONS, type Command, type CniDns, type CniVersion } from './spec.js';

export const DEFAULT_SOCKET_PATH = '/run/weir/cni.sock';
export const DEFAULT_TIMEOUT_SECONDS = 30;

export interface PluginEnv {
  command: Command;
  containerId?: string;
  /** Empty or absent on some DELs (the runtime lost the netns). */
  netns?: string;
  ifname?: string;
  /** CNI_ARGS as key -> value (K8S_POD_NAMESPACE, K8S_POD_NAME, ...). */
  args: Record<string, string>;
  path: string[];
}

export interface Attachment {
  containerId: string;
  ifname: string;
}

/** weir's plugin configuration after validation. */
export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  /** The agent's unix socket. */
  socketPath: string;
  /** How long the plugin waits for the agent's answer. */
  timeoutMs: number;
  dns?: CniDns;
  prevResult?: unknown;
  /** GC: attachments the runtime still uses (cni.dev/valid-attachments). */
  validAttachments?: Attachment[];
}

// SPEC 1.1.0: container ids and network names start alphanumeric, then [A-Za-z0-9_.-].
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Interface names as the spec allows them (and Linux): 1..15 chars, not . or .., no / : or whitespace. */
export function validIfname(s: string): boolean {
  return s.length > 0 && s.length < 16 && s !== '.' && s !== '..' && !/[/:\s]/.test(s);
}

/** "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b" -> record. A part without '=' is an error (code 4). */
export function parseCniArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const part of s.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new CniError(ErrorCode.InvalidEnvironment, 'invalid CNI_ARGS', `'${part}' is not KEY=VALUE (CNI_ARGS is KEY=VALUE pairs separated by ';')`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

const envError = (name: string, why: string) => new CniError(ErrorCode.InvalidEnvironment, `invalid ${name}`, why);

/** The CNI_* variables the command needs, validated. */
export function parseEnv(env: NodeJS.ProcessEnv): PluginEnv {
  const cmd = env.CNI_COMMAND;
  if (!cmd) throw envError('CNI_COMMAND', `CNI_COMMAND is not set (one of ${COMMANDS.join(', ')})`);
  if (!(COMMANDS as readonly string[]).includes(cmd)) throw envError('CNI_COMMAND', `'${cmd}' is not one of ${COMMANDS.join(', ')}`);
  const command = cmd as Command;
  const out: PluginEnv = { command, args: {}, path: (env.CNI_PATH ?? '').split(':').filter(Boolean) };
  if (command === 'VERSION' || command === 'STATUS' || command === 'GC') return out;

  const id = env.CNI_CONTAINERID;
  if (!id) throw envError('CNI_CONTAINERID', 'CNI_CONTAINERID is not set');
  if (!ID_RE.test(id)) throw envError('CNI_CONTAINERID', `'${id}' must start with a letter or digit followed by letters, digits, '_', '.' or '-'`);
  const ifname = env.CNI_IFNAME;
  if (!ifname) throw envError('CNI_IFNAME', 'CNI_IFNAME is not set');
  if (!validIfname(ifname)) throw envError('CNI_IFNAME', `'${ifname}' is not a valid interface name (1-15 characters, no '/', ':' or whitespace, not '.' or '..')`);
  const netns = env.CNI_NETNS;
  if (command !== 'DEL') {
    if (!netns) throw envError('CNI_NETNS', `CNI_NETNS is not set (${command} needs the container's network namespace path)`);
  }
  if (netns && !netns.startsWith('/')) throw envError('CNI_NETNS', `'${netns}' is not an absolute path`);
  out.containerId = id;
  out.ifname = ifname;
  out.netns = netns || undefined;
  out.args = parseCniArgs(env.CNI_ARGS);
  return out;
}

/** Keys a runtime may pass (SPEC 1.1.0 and libcni) plus weir's own. Anything else is a typo: code 2. */
const STANDARD_KEYS = new Set([
  'cniVersion', 'cniVersions', 'name', 'type', 'args', 'ipMasq', 'dns', 'capabilities', 'runtimeConfig',
  'prevResult', 'disableCheck', 'disableGC', 'cni.dev/valid-attachments', 'cni.dev/attachments',
]);
const WEIR_KEYS = new Set(['socketPath', 'timeoutSeconds']);

const cfgError = (field: string, why: string) => new CniError(ErrorCode.InvalidConfig, `invalid network config field '${field}'`, why);

/** The version to answer in (errors included): the config's when weir supports it, else 1.1.0. */
export function replyVersion(raw: unknown): CniVersion {
  const v = raw && typeof raw === 'object' ? (raw as { cniVersion?: unknown }).cniVersion : undefined;
  return isSupported(v) ? v : '1.1.0';
}

/** stdin text -> JSON object, or code 6. */
export function decodeStdin(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrorCode.DecodeFailure, 'cannot decode the network configuration', `stdin is not JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CniError(ErrorCode.DecodeFailure, 'cannot decode the network configuration', 'stdin must hold a JSON object');
  return v as Record<string, unknown>;
}

/** Validates weir's plugin configuration for `command` (the runtime has already picked cniVersion). */
export function parseNetConf(raw: Record<string, unknown>, command: Command): NetConf {
  if (raw.cniVersion === undefined) throw cfgError('cniVersion', 'cniVersion is required');
  if (!isSupported(raw.cniVersion)) {
    throw new CniError(ErrorCode.IncompatibleVersion, 'incompatible CNI version', `cniVersion ${JSON.stringify(raw.cniVersion)} is not supported; weir supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  const cniVersion = raw.cniVersion;
  if (command === 'CHECK' && compareVersions(cniVersion, '0.4.0') < 0) {
    throw new CniError(ErrorCode.IncompatibleVersion, 'incompatible CNI version', `CHECK needs cniVersion 0.4.0 or later, the configuration says ${cniVersion}`);
  }
  if ((command === 'GC' || command === 'STATUS') && compareVersions(cniVersion, '1.1.0') < 0) {
    throw new CniError(ErrorCode.IncompatibleVersion, 'incompatible CNI version', `${command} needs cniVersion 1.1.0, the configuration says ${cniVersion}`);
  }
  for (const k of Object.keys(raw)) {
    if (k === 'ipam') throw new CniError(ErrorCode.UnsupportedField, `unsupported field 'ipam'`, 'weir allocates pod addresses itself from the node\'s pod CIDR; remove "ipam" from the configuration');
    if (!STANDARD_KEYS.has(k) && !WEIR_KEYS.has(k)) {
      throw new CniError(ErrorCode.UnsupportedField, `unsupported field '${k}'`, `weir-cni accepts ${[...WEIR_KEYS].join(', ')} besides the spec's fields`);
    }
  }
  if (typeof raw.name !== 'string' || !ID_RE.test(raw.name)) {
    throw cfgError('name', `${JSON.stringify(raw.name)}: a network name starts with a letter or digit followed by letters, digits, '_', '.' or '-'`);
  }
  if (typeof raw.type !== 'string' || raw.type === '') throw cfgError('type', 'type must name the plugin binary (weir-cni)');
  let socketPath = DEFAULT_SOCKET_PATH;
  if (raw.socketPath !== undefined) {
    if (typeof raw.socketPath !== 'string' || !raw.socketPath.startsWith('/')) throw cfgError('socketPath', `${JSON.stringify(raw.socketPath)} is not an absolute path`);
    if (Buffer.byteLength(raw.socketPath) > 107) throw cfgError('socketPath', `${raw.socketPath} is longer than a unix socket path may be (107 bytes)`);
    socketPath = raw.socketPath;
  }
  let timeoutSeconds = DEFAULT_TIMEOUT_SECONDS;
  if (raw.timeoutSeconds !== undefined) {
    const t = raw.timeoutSeconds;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > 3600) throw cfgError('timeoutSeconds', `${JSON.stringify(t)}: expected a number of seconds in (0, 3600]`);
    timeoutSeconds = t;
  }
  const out: NetConf = { cniVersion, name: raw.name, type: raw.type, socketPath, timeoutMs: Math.round(timeoutSeconds * 1000) };
  if (raw.dns !== undefined) {
    if (!raw.dns || typeof raw.dns !== 'object' || Array.isArray(raw.dns)) throw cfgError('dns', 'dns must be an object (nameservers, domain, search, options)');
    out.dns = raw.dns as CniDns;
  }
  if (raw.prevResult !== undefined) {
    if (!raw.prevResult || typeof raw.prevResult !== 'object') throw cfgError('prevResult', 'prevResult must be the object ADD returned');
    out.prevResult = raw.prevResult;
  }
  if (command === 'GC') out.validAttachments = parseAttachments(raw);
  return out;
}

/** cni.dev/valid-attachments (libcni also sends the earlier spelling cni.dev/attachments). */
function parseAttachments(raw: Record<string, unknown>): Attachment[] {
  const key = raw['cni.dev/valid-attachments'] !== undefined ? 'cni.dev/valid-attachments' : 'cni.dev/attachments';
  const list = raw[key];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw cfgError(key, 'expected an array of {"containerID", "ifname"} objects');
  return list.map((a, i) => {
    const o = a as { containerID?: unknown; ifname?: unknown };
    if (!o || typeof o !== 'object' || typeof o.containerID !== 'string' || o.containerID === '' || typeof o.ifname !== 'string' || o.ifname === '') {
      throw cfgError(`${key}[${i}]`, `expected {"containerID": string, "ifname": string}, got ${JSON.stringify(a)}`);
    }
    return { containerId: o.containerID, ifname: o.ifname };
  });
}

// The agent's CNI socket: weir-cni connects, sends one framed request
// (control/cni/wire.ts), gets one framed response. The handler (an
// EndpointManager) does the work; this file only speaks the protocol, bounds
// how long a silent client may hold a connection, and turns every failure
// into a CNI error code the plugin passes on unchanged.
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { asCniError, CniError, ErrorCode } from '../cni/errors.js';
import { encodeFrame, FrameDecoder, WIRE_VERSION, type AgentRequest, type AgentResponse, type EndpointReply } from '../cni/wire.js';
import type { AddRequest, CheckRequest, DelRequest, Logger, StatusReport } from '../endpoint/manager.js';

/** What the server needs from the endpoint side (EndpointManager has it). */
export interface CniHandler {
  add(req: AddRequest): Promise<EndpointReply>;
  del(req: DelRequest): Promise<void>;
  check(req: CheckRequest): Promise<void>;
  gc(valid: Array<{ containerId: string; ifname: string }>): Promise<unknown>;
  status(): StatusReport;
}

export interface CniServerOptions {
  /** e.g. /run/weir/cni.sock (the conflist's socketPath). */
  socketPath: string;
  manager: CniHandler;
  /** A client must send its whole request within this (default 5 s). */
  readTimeoutMs?: number;
  log?: Logger;
}

export interface CniServer {
  readonly socketPath: string;
  /** Requests being handled now. */
  readonly inFlight: number;
  /** Stops accepting, waits up to graceMs (default 10 s) for requests in flight, removes the socket file. */
  close(graceMs?: number): Promise<void>;
}

const quiet: Logger = { info() {}, warn() {} };

/** Starts serving; rejects if another agent already listens on the path. */
export async function serveCni(o: CniServerOptions): Promise<CniServer> {
  const log = o.log ?? quiet;
  const readTimeoutMs = o.readTimeoutMs ?? 5_000;
  await clearStaleSocket(o.socketPath);
  mkdirSync(dirname(o.socketPath), { recursive: true, mode: 0o755 });

  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  const sockets = new Set<Socket>();

  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const decoder = new FrameDecoder();
    let handled = false;
    const timer = setTimeout(() => sock.destroy(), readTimeoutMs);
    const reply = (res: AgentResponse) => {
      if (!sock.destroyed) sock.end(encodeFrame(res));
    };
    sock.on('error', () => undefined); // a vanished client is its own problem
    sock.on('data', (chunk: Buffer) => {
      if (handled) return;
      let msgs: unknown[];
      try {
        msgs = decoder.push(chunk);
      } catch (e) {
        handled = true;
        clearTimeout(timer);
        return reply(fail(new CniError(ErrorCode.AgentProtocol, 'bad request frame', (e as Error).message)));
      }
      if (msgs.length === 0) return;
      handled = true;
      clearTimeout(timer);
      inFlight++;
      const p = handle(o.manager, msgs[0], log)
        .then(reply)
        .finally(() => {
          inFlight--;
          pending.delete(p);
        });
      pending.add(p);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(o.socketPath, 0o600); // root's runtime only: ADD creates interfaces on its word
  log.info({ socketPath: o.socketPath }, 'cni socket listening');

  return {
    socketPath: o.socketPath,
    get inFlight() {
      return inFlight;
    },
    async close(graceMs = 10_000) {
      const closed = new Promise<void>((r) => server.close(() => r()));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...pending]), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      await closed;
      try {
        unlinkSync(o.socketPath);
      } catch {
        /* already gone */
      }
    },
  };
}

const fail = (e: CniError): AgentResponse => ({ v: WIRE_VERSION, ok: false, code: e.code, msg: e.msg, ...(e.details ? { details: e.details } : {}) });

const str = (v: unknown, field: string): string => {
  if (typeof v !== 'string' || v === '') throw new CniError(ErrorCode.AgentProtocol, 'bad request', `field ${field} must be a non-empty string`);
  return v;
};

async function handle(m: CniHandler, raw: unknown, log: Logger): Promise<AgentResponse> {
  const req = raw as AgentRequest;
  try {
    if (!req || typeof req !== 'object') throw new CniError(ErrorCode.AgentProtocol, 'bad request', 'the request is not an object');
    if (req.v !== WIRE_VERSION) throw new CniError(ErrorCode.AgentProtocol, 'bad request', `protocol version ${String(req.v)}; this agent speaks ${WIRE_VERSION} (upgrade weir-cni and the agent together)`);
    const args = req.args && typeof req.args === 'object' ? req.args : {};
    switch (req.op) {
      case 'ADD': {
        const endpoint = await m.add({ containerId: str(req.containerId, 'containerId'), ifname: str(req.ifname, 'ifname'), netns: str(req.netns, 'netns'), network: req.network, args });
        return { v: WIRE_VERSION, ok: true, endpoint };
      }
      case 'DEL':
        await m.del({ containerId: str(req.containerId, 'containerId'), ifname: str(req.ifname, 'ifname'), netns: req.netns || undefined });
        return { v: WIRE_VERSION, ok: true };
      case 'CHECK':
        await m.check({ containerId: str(req.containerId, 'containerId'), ifname: str(req.ifname, 'ifname'), netns: str(req.netns, 'netns'), prevResult: req.prevResult });
        return { v: WIRE_VERSION, ok: true };
      case 'GC': {
        const valid = Array.isArray(req.validAttachments) ? req.validAttachments : [];
        valid.forEach((a, i) => {
          str(a?.containerId, `validAttachments[${i}].containerId`);
          str(a?.ifname, `validAttachments[${i}].ifname`);
        });
        await m.gc(valid);
        return { v: WIRE_VERSION, ok: true };
      }
      case 'STATUS': {
        const s = m.status();
        if (!s.ready) {
          if (s.limited) throw new CniError(ErrorCode.NotAvailableLimited, 'weir agent cannot take ADDs; existing pods may have limited connectivity', s.reason ?? 'not ready');
          throw new CniError(ErrorCode.NotAvailable, 'weir agent cannot take ADDs now', s.reason ?? 'not ready');
        }
        return { v: WIRE_VERSION, ok: true };
      }
      default:
        throw new CniError(ErrorCode.AgentProtocol, 'bad request', `unknown op ${JSON.stringify(req.op)}`);
    }
  } catch (e) {
    const c = asCniError(e);
    if (req?.op !== 'STATUS') log.warn({ op: req?.op, containerId: req?.containerId, code: c.code, err: c.message }, 'cni request failed');
    return fail(c);
  }
}

/** A socket file nobody listens on (a crashed agent's) is removed; a live one or a non-socket is an error. */
async function clearStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`cni socket ${path} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new Error(`cni socket ${path}: another agent is already listening on it`);
  unlinkSync(path);
}

// The plugin's side of the agent socket: one request, one response, bounded by
// a deadline. An absent or silent agent is "try again later" (code 11), so the
// runtime retries instead of treating the pod as broken.
import { connect } from 'node:net';
import { CniError, ErrorCode } from './errors.js';
import { encodeFrame, FrameDecoder, WIRE_VERSION, type AgentRequest, type AgentResponse } from './wire.js';

export class AgentUnavailableError extends CniError {}

/** Sends `req` to the agent at `socketPath`; resolves with its response or rejects with a CniError. */
export function callAgent(socketPath: string, req: AgentRequest, timeoutMs: number): Promise<AgentResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path: socketPath });
    const decoder = new FrameDecoder();
    let done = false;
    const finish = (err: CniError | undefined, res?: AgentResponse) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(
      () => finish(new AgentUnavailableError(ErrorCode.TryAgainLater, 'weir agent did not answer', `no answer on ${socketPath} within ${timeoutMs} ms (${req.op})`)),
      timeoutMs,
    );
    sock.on('connect', () => sock.write(encodeFrame(req)));
    sock.on('data', (chunk: Buffer) => {
      let msgs: unknown[];
      try {
        msgs = decoder.push(chunk);
      } catch (e) {
        return finish(new CniError(ErrorCode.AgentProtocol, 'unreadable answer from the weir agent', (e as Error).message));
      }
      if (msgs.length === 0) return;
      const res = msgs[0] as AgentResponse;
      if (!res || typeof res !== 'object' || typeof res.ok !== 'boolean' || res.v !== WIRE_VERSION) {
        return finish(new CniError(ErrorCode.AgentProtocol, 'unreadable answer from the weir agent', `expected a v${WIRE_VERSION} response, got ${JSON.stringify(res)?.slice(0, 200)}`));
      }
      finish(undefined, res);
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        return finish(new AgentUnavailableError(ErrorCode.TryAgainLater, 'weir agent is not running', `cannot connect to ${socketPath} (${e.code}): start the weir agent on this node`));
      }
      if (e.code === 'EACCES' || e.code === 'EPERM') {
        return finish(new CniError(ErrorCode.IoFailure, 'cannot reach the weir agent', `${socketPath}: ${e.message}`));
      }
      finish(new AgentUnavailableError(ErrorCode.TryAgainLater, 'weir agent connection failed', `${socketPath}: ${e.message}`));
    });
    sock.on('close', () =>
      finish(new AgentUnavailableError(ErrorCode.TryAgainLater, 'weir agent closed the connection', `${socketPath} closed before answering ${req.op} (agent restarting?)`)),
    );
  });
}

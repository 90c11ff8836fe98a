// CNI error codes (SPEC.md 1.1.0, "Error" section) and weir's own (100+), and
// the error the plugin prints as JSON on stdout. The agent throws the same
// class, so a code chosen where the failure happens reaches the runtime as is.

export const ErrorCode = {
  /** Incompatible CNI version. */
  IncompatibleVersion: 1,
  /** Unsupported field in network configuration; msg names the key. */
  UnsupportedField: 2,
  /** Container unknown or does not exist: the runtime need not DEL. */
  UnknownContainer: 3,
  /** Invalid necessary environment variables (CNI_COMMAND, CNI_NETNS, ...). */
  InvalidEnvironment: 4,
  /** I/O failure (e.g. reading stdin, writing state). */
  IoFailure: 5,
  /** Failed to decode content (stdin is not JSON). */
  DecodeFailure: 6,
  /** Invalid network config (a field has a bad value). */
  InvalidConfig: 7,
  /** Try again later: the agent is absent, starting, or busy. */
  TryAgainLater: 11,
  /** STATUS: the plugin cannot service ADD requests. */
  NotAvailable: 50,
  /** STATUS: not available, and existing containers may have limited connectivity. */
  NotAvailableLimited: 51,
  /** weir: unexpected failure inside the agent. */
  Internal: 100,
  /** weir: CHECK found the endpoint not as ADD made it. */
  CheckFailed: 101,
  /** weir: no free address in the node's pod CIDR. */
  PoolExhausted: 102,
  /** weir: the agent answered something the plugin cannot read. */
  AgentProtocol: 103,
  /** weir: creating or configuring an interface, address or route failed. */
  LinkSetup: 104,
  /** weir: attaching programs or writing the endpoint map failed. */
  Datapath: 105,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A failure with a CNI error code; `msg` is short, `details` says what and why. */
export class CniError extends Error {
  override name = 'CniError';
  constructor(
    readonly code: number,
    readonly msg: string,
    readonly details = '',
  ) {
    super(details ? `${msg}: ${details}` : msg);
  }

  /** The spec's error object (printed to stdout with a non-zero exit). */
  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.msg, ...(this.details ? { details: this.details } : {}) };
  }
}

/** Anything thrown -> CniError (unknown errors become Internal, keeping their message). */
export function asCniError(e: unknown, code: number = ErrorCode.Internal, msg = 'weir agent failed'): CniError {
  if (e instanceof CniError) return e;
  if (e && typeof e === 'object' && typeof (e as CniError).code === 'number' && typeof (e as CniError).msg === 'string') {
    const o = e as CniError;
    return new CniError(o.code, o.msg, o.details ?? '');
  }
  return new CniError(code, msg, e instanceof Error ? e.message : String(e));
}

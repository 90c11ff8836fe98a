// The plugin <-> agent protocol on the node's unix socket: one request and one
// response per connection, each a frame of a 4-byte big-endian length and a
// msgpack body. Shared by the plugin (client.ts) and the agent (cni-server.ts).
import { Packr } from 'msgpackr';
import type { CniRoute } from './spec.js';

export const WIRE_VERSION = 1;
/** Largest frame either side accepts (a GC list of 100k attachments fits). */
export const MAX_FRAME = 16 << 20;

export type AgentOp = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC';

export interface AgentRequest {
  v: number;
  op: AgentOp;
  /** Network name from the configuration. */
  network: string;
  containerId?: string;
  ifname?: string;
  netns?: string;
  /** CNI_ARGS, e.g. K8S_POD_NAMESPACE / K8S_POD_NAME / K8S_POD_UID. */
  args?: Record<string, string>;
  /** CHECK/DEL: the result of the previous ADD, as the runtime passed it. */
  prevResult?: unknown;
  /** GC: attachments to keep. */
  validAttachments?: Array<{ containerId: string; ifname: string }>;
}

/** What the agent made for an ADD; the plugin turns it into the spec's result. */
export interface EndpointReply {
  hostIfname: string;
  hostMac: string;
  podIfname: string;
  podMac: string;
  /** The pod netns path (the result's sandbox). */
  sandbox: string;
  mtu: number;
  /** CIDR, e.g. 10.244.1.5/32. */
  address: string;
  gateway: string;
  routes: CniRoute[];
}

export type AgentResponse =
  | { v: number; ok: true; endpoint?: EndpointReply }
  | { v: number; ok: false; code: number; msg: string; details?: string };

// Plain maps both ways: records/structures would tie the two ends to one msgpackr build.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export function encodeFrame(msg: unknown): Buffer {
  const body = packr.pack(msg);
  if (body.length > MAX_FRAME) throw new Error(`message of ${body.length} bytes exceeds the ${MAX_FRAME}-byte frame limit`);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Accumulates stream chunks and yields whole decoded frames. */
export class FrameDecoder {
  #buf: Buffer = Buffer.alloc(0);

  /** Decoded messages completed by this chunk. Throws on an oversized or undecodable frame. */
  push(chunk: Buffer): unknown[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: unknown[] = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len > MAX_FRAME) throw new Error(`frame of ${len} bytes exceeds the ${MAX_FRAME}-byte limit`);
      if (this.#buf.length < 4 + len) break;
      const body = this.#buf.subarray(4, 4 + len);
      this.#buf = this.#buf.subarray(4 + len);
      out.push(packr.unpack(body));
    }
    return out;
  }

  /** Bytes received that do not yet form a frame. */
  get pending(): number {
    return this.#buf.length;
  }
}

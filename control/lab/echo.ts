// `weir/echo`: the lab's built-in echo server, run inside a pod's netns.
// HTTP on each port answers with the pod's name first, then its namespace,
// its IP and the client address it saw; UDP on the same ports echoes the
// datagram back prefixed with the same facts.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:http';

export interface EchoOptions {
  pod: string;
  namespace: string;
  ip: string;
  ports: number[];
}

export function echoBody(o: EchoOptions, client: string): string {
  return `${o.pod} ${o.namespace} ${o.ip} client=${client}\n`;
}

/** Starts the servers; resolves when every port listens. */
export async function startEcho(o: EchoOptions): Promise<() => void> {
  const closers: Array<() => void> = [];
  for (const port of o.ports) {
    const http = createServer((req, res) => {
      const client = `${req.socket.remoteAddress?.replace(/^::ffff:/, '')}:${req.socket.remotePort}`;
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end(echoBody(o, client));
    });
    http.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, '0.0.0.0', () => resolve());
    });
    const udp = createSocket('udp4');
    udp.on('message', (msg, rinfo) => {
      const reply = Buffer.concat([Buffer.from(echoBody(o, `${rinfo.address}:${rinfo.port}`)), msg]);
      udp.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, '0.0.0.0', () => resolve());
    });
    closers.push(() => http.close(), () => udp.close());
  }
  return () => closers.forEach((c) => c());
}

/** `node echo.js --pod NAME --namespace NS --ip IP --port 8080 [--port ...]` */
export async function echoMain(argv: string[]): Promise<void> {
  const o: EchoOptions = { pod: '', namespace: 'default', ip: '', ports: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`echo: ${k} needs a value`);
    if (k === '--pod') o.pod = v;
    else if (k === '--namespace') o.namespace = v;
    else if (k === '--ip') o.ip = v;
    else if (k === '--port') {
      const p = Number(v);
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`echo: --port ${v}: expected 1..65535`);
      o.ports.push(p);
    } else throw new Error(`echo: unknown argument ${k}`);
  }
  if (!o.pod) throw new Error('echo: --pod is required');
  if (o.ports.length === 0) o.ports.push(8080);
  await startEcho(o);
  process.stdout.write(`echo ${o.namespace}/${o.pod} listening on ${o.ports.join(',')}\n`);
}

if (process.argv[1] && /echo\.(js|ts)$/.test(process.argv[1])) {
  echoMain(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  });
}

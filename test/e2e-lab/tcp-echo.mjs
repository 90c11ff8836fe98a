// A raw TCP line echo server for the lab's restart tests (the lab's weir/echo
// speaks HTTP with one response per connection, which cannot show whether a
// long-lived connection survives). Run as a pod's command: each line a client
// sends comes back as "<pod name> <client address> <line>".
import { createServer } from 'node:net';

const port = Number(process.argv[2] ?? 7000);
const pod = process.env.POD_NAME ?? 'tcp-echo';
createServer((sock) => {
  const client = sock.remoteAddress?.replace(/^::ffff:/, '');
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      sock.write(`${pod} ${client} ${buf.slice(0, i)}\n`);
      buf = buf.slice(i + 1);
    }
  });
  sock.on('error', () => sock.destroy());
}).listen(port, '0.0.0.0', () => process.stdout.write(`tcp-echo ${pod} on ${port}\n`));

// Connectivity probes from inside one client pod's netns, all at once.
//   node probe.mjs TIMEOUT_MS TARGETS_JSON
// TARGETS_JSON: [{ "key": "...", "ip": "10.244.1.5", "port": 80, "proto": "TCP"|"UDP" }, ...]
// Prints one JSON object: { key: { verdict, server?, ms } } with verdict
//   "allowed"  TCP: the connection opened and weir/echo answered the GET;
//              UDP: weir/echo's reply came back;
//   "denied"   no answer within TIMEOUT_MS (a policy drop is silent);
//   "refused"  RST / ICMP port unreachable (no server there: a broken setup, never a policy verdict);
//   "error"    anything else (message in err).
// server is the pod name the echo server put first in its answer, so a probe
// answered by the wrong pod is visible.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';

const timeoutMs = Number(process.argv[2]);
const targets = JSON.parse(process.argv[3]);

function probeTcp(t) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let body = '';
    let done = false;
    const finish = (verdict, extra = {}) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ verdict, ms: Date.now() - t0, ...extra });
    };
    const sock = connect({ host: t.ip, port: t.port });
    const timer = setTimeout(() => finish(body ? 'error' : 'denied', body ? { err: `partial answer: ${body.slice(0, 80)}` } : {}), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`GET / HTTP/1.0\r\nHost: ${t.ip}\r\n\r\n`));
    sock.on('data', (d) => (body += d));
    sock.on('end', () => {
      const text = body.split('\r\n\r\n')[1] ?? '';
      if (/^HTTP\/1\.[01] 200/.test(body) && text) finish('allowed', { server: text.split(' ')[0] });
      else finish('error', { err: `unexpected answer: ${body.slice(0, 80)}` });
    });
    sock.on('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : 'error', { err: e.code ?? e.message }));
  });
}

function probeUdp(t) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let done = false;
    let resend;
    const sock = createSocket('udp4');
    const finish = (verdict, extra = {}) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(resend);
      sock.close();
      resolve({ verdict, ms: Date.now() - t0, ...extra });
    };
    const timer = setTimeout(() => finish('denied'), timeoutMs);
    sock.on('message', (msg) => finish('allowed', { server: msg.toString('utf8').split(' ')[0] }));
    sock.on('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : 'error', { err: e.code ?? e.message }));
    // connect() so an ICMP port unreachable surfaces as ECONNREFUSED. A
    // datagram can be lost for reasons other than policy (a neighbour entry
    // being resolved): send again every 400 ms until answered.
    sock.connect(t.port, t.ip, () => {
      const send = () => !done && sock.send(`probe ${t.key}\n`);
      send();
      resend = setInterval(send, 400);
    });
  });
}

const results = await Promise.all(targets.map((t) => (t.proto === 'UDP' ? probeUdp(t) : probeTcp(t)).then((r) => [t.key, r])));
process.stdout.write(JSON.stringify(Object.fromEntries(results)) + '\n');

// Load for the agent-restart test, run inside the client pod's netns:
//  - a new TCP connection to HOST:PORT (an HTTP GET) every INTERVAL ms, each
//    recorded as ok or failed with its start time;
//  - one long-lived TCP connection to ECHO_HOST:ECHO_PORT, sending a numbered
//    line every 100 ms and checking each reply.
// Runs until SIGTERM, then waits for what is in flight and prints one JSON
// summary on stdout.
//   node load.mjs HOST PORT INTERVAL_MS ECHO_HOST ECHO_PORT
import { connect } from 'node:net';

const [host, port, intervalMs, echoHost, echoPort] = process.argv.slice(2);
const t0 = Date.now();
const now = () => Date.now() - t0;
// A connection that has not completed its request/response in this long counts as failed.
const ATTEMPT_TIMEOUT_MS = 3000;

const attempts = { started: 0, ok: 0, failed: [] };
let inFlight = 0;

function attempt() {
  attempts.started++;
  inFlight++;
  const at = now();
  let body = '';
  let done = false;
  const finish = (err) => {
    if (done) return;
    done = true;
    inFlight--;
    clearTimeout(timer);
    sock.destroy();
    if (!err && /^HTTP\/1\.[01] 200/.test(body)) attempts.ok++;
    else attempts.failed.push({ at, err: err ?? `bad response: ${JSON.stringify(body.slice(0, 80))}` });
  };
  const sock = connect({ host, port: Number(port) });
  const timer = setTimeout(() => finish(`no response in ${ATTEMPT_TIMEOUT_MS} ms`), ATTEMPT_TIMEOUT_MS);
  sock.setEncoding('utf8');
  sock.on('connect', () => sock.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
  sock.on('data', (d) => (body += d));
  sock.on('end', () => finish());
  sock.on('error', (e) => finish(e.code ?? e.message));
}

const long = { connected: false, sent: 0, answered: 0, wrong: 0, closed: null, error: null, backend: null, clientSeen: null };
const ls = connect({ host: echoHost, port: Number(echoPort) });
let pending = '';
ls.setEncoding('utf8');
ls.on('connect', () => (long.connected = true));
ls.on('data', (d) => {
  pending += d;
  for (let i = pending.indexOf('\n'); i >= 0; i = pending.indexOf('\n')) {
    const [pod, client, word, n] = pending.slice(0, i).split(' ');
    pending = pending.slice(i + 1);
    long.backend ??= pod;
    long.clientSeen ??= client;
    if (word === 'seq' && Number(n) === long.answered + 1 && pod === long.backend) long.answered++;
    else long.wrong++;
  }
});
ls.on('close', () => (long.closed ??= now()));
ls.on('error', (e) => (long.error ??= `${now()}: ${e.code ?? e.message}`));
const lineTimer = setInterval(() => {
  if (long.connected && long.closed === null) ls.write(`seq ${++long.sent}\n`);
}, 100);

const loadTimer = setInterval(() => {
  if (inFlight < 200) attempt();
}, Number(intervalMs));

process.on('SIGTERM', async () => {
  clearInterval(loadTimer);
  clearInterval(lineTimer);
  const end = Date.now() + ATTEMPT_TIMEOUT_MS + 1000;
  while ((inFlight > 0 || long.answered < long.sent) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  const stillOpen = long.closed === null && !ls.destroyed;
  ls.destroy();
  process.stdout.write(JSON.stringify({ durationMs: now(), attempts, long: { ...long, stillOpen } }) + '\n');
  process.exit(0);
});
process.stdout.write('ready\n');

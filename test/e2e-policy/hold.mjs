// One long-lived TCP connection for the "established connection survives a
// new policy" test, run inside a client pod's netns:
//   node hold.mjs HOST PORT
// Connects to a line echo server (test/e2e-lab/tcp-echo.mjs), prints
// "connected", sends a numbered line every 100 ms, and on SIGTERM prints one
// JSON summary: { sent, answered, wrong, answeredAt: [epoch ms...], closed, error }.
import { connect } from 'node:net';

const [host, port] = process.argv.slice(2);
const s = { sent: 0, answered: 0, wrong: 0, answeredAt: [], closed: null, error: null };
let buf = '';
let next = 1;
let timer;
const sock = connect({ host, port: Number(port) }, () => {
  process.stdout.write('connected\n');
  timer = setInterval(() => {
    s.sent++;
    sock.write(`${s.sent}\n`);
  }, 100);
});
sock.setEncoding('utf8');
sock.on('data', (d) => {
  buf += d;
  for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    // "<pod> <client addr> <n>"
    if (line.split(' ')[2] === String(next)) {
      s.answered++;
      s.answeredAt.push(Date.now());
      next++;
    } else s.wrong++;
  }
});
sock.on('close', () => (s.closed = Date.now()));
sock.on('error', (e) => (s.error = e.code ?? e.message));
process.on('SIGTERM', () => {
  clearInterval(timer);
  // Let the last line's answer arrive.
  setTimeout(() => {
    process.stdout.write(JSON.stringify(s) + '\n');
    process.exit(0);
  }, 300);
});

// Tiny TCP/UDP tool run inside test network namespaces (`ip netns exec NS node net-tool.mjs ...`):
//   serve PORT [LABEL]        TCP echo server that prefixes replies with LABEL; prints "ready" when listening
//   connect HOST PORT TEXT    sends TEXT, prints the reply, exits 0; exits 1 on error or after 4 s
//   stream HOST PORT          sends "n" every 100 ms and prints each echoed line until killed or cut
import net from 'node:net';

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'serve') {
  const label = b ?? 'echo';
  net.createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (d) => s.write(`${label}:${d}`));
  }).listen(Number(a), '0.0.0.0', () => console.log('ready'));
} else if (mode === 'connect') {
  const s = net.connect({ host: a, port: Number(b) });
  const t = setTimeout(() => { console.error('timeout'); process.exit(1); }, 4000);
  s.on('connect', () => s.write(c ?? 'hi'));
  s.on('data', (d) => { clearTimeout(t); process.stdout.write(String(d)); s.destroy(); process.exit(0); });
  s.on('error', (e) => { console.error(e.message); process.exit(1); });
} else if (mode === 'stream') {
  const s = net.connect({ host: a, port: Number(b) });
  let n = 0;
  s.on('connect', () => setInterval(() => s.write(`${n++}\n`), 100));
  s.on('data', (d) => process.stdout.write(String(d)));
  s.on('error', (e) => { console.error(e.message); process.exit(1); });
  s.on('close', () => { console.error('closed'); process.exit(2); });
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}

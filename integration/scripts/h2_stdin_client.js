// An HTTP/2 client on ONE long-lived connection, for tests that start the
// agent after the connection is open (tests/midway.rs).
//
//     node h2_stdin_client.js URL PATH N
//         Connects to URL (http:// for h2c prior knowledge, https:// for h2
//         by ALPN; certificates are not checked), GETs PATH N times, prints
//         "phase1 done <local port>". Then, for each line read on stdin (a
//         path), GETs it on the same connection and prints
//         "<status> <body bytes>". Closes the connection at end of input.
const http2 = require('http2');
const readline = require('readline');

const [url, path, n] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const session = http2.connect(url, { rejectUnauthorized: false });
session.on('error', (e) => { console.error(e); process.exit(1); });

function get(p) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ':path': p });
    let status = 0;
    let bytes = 0;
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', (c) => { bytes += c.length; });
    req.on('end', () => resolve([status, bytes]));
    req.on('error', reject);
    req.end();
  });
}

(async () => {
  for (let i = 0; i < n; i++) {
    const [status] = await get(path);
    if (status !== 200) throw new Error(`phase 1: ${status}`);
  }
  console.log(`phase1 done ${session.socket.localPort}`);
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const p = line.trim();
    if (!p) continue;
    const [status, bytes] = await get(p);
    console.log(`${status} ${bytes}`);
  }
  session.close();
})().catch((e) => { console.error(e); process.exit(1); });

// A hand-written SSE fan-out, as an app team writes one today with plain Node http: a
// Map<channel, Set<res>> in one process. The baseline ssegate replaces.
//   GET  /sub/<channel>  -> text/event-stream, kept open, ": hb" comment every 30 s
//   POST /pub/<channel>  -> body written as one SSE event ("data: <line>" per body line) to every subscriber
// No replay, no backpressure handling, single process. Listens on 127.0.0.1:${PORT:-8083}.
'use strict';
const http = require('http');
const PORT = +(process.env.PORT || 8083);
const channels = new Map(); // channel -> Set<res>
let nextId = 1;

function subscribe(ch, req, res) {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    'Connection': 'keep-alive',
  });
  res.write(': ok\n\n');
  let set = channels.get(ch);
  if (!set) { set = new Set(); channels.set(ch, set); }
  set.add(res);
  req.socket.setNoDelay(true);
  req.on('close', () => {
    set.delete(res);
    if (set.size === 0 && channels.get(ch) === set) channels.delete(ch);
  });
}

function publish(ch, req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const frame = `id: ${nextId++}\n` + body.split(/\r?\n/).map((l) => `data: ${l}\n`).join('') + '\n';
    const set = channels.get(ch);
    let n = 0;
    if (set) for (const sub of set) { sub.write(frame); n++; }
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`delivered ${n}\n`);
  });
}

const server = http.createServer((req, res) => {
  const m = /^\/(sub|pub)\/([A-Za-z0-9_.-]+)$/.exec(req.url.split('?')[0]);
  if (m && m[1] === 'sub' && req.method === 'GET') return subscribe(m[2], req, res);
  if (m && m[1] === 'pub' && req.method === 'POST') return publish(m[2], req, res);
  res.writeHead(404); res.end('not found\n');
});
server.keepAliveTimeout = 65000;
server.requestTimeout = 0;   // SSE responses never "finish"; Node 18+ would cut them at 300 s otherwise
server.headersTimeout = 60000;
server.maxConnections = 100000;

setInterval(() => {
  for (const set of channels.values()) for (const res of set) res.write(': hb\n\n');
}, 30000).unref();

server.listen({ port: PORT, host: '127.0.0.1', backlog: 4096 }, () =>
  console.log(`node SSE server on 127.0.0.1:${PORT}`));

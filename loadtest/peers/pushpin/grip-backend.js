// The GRIP origin behind Pushpin: it answers GET /stream/<channel> with headers that tell
// Pushpin to hold the response open as an http-stream subscribed to <channel>. Events are
// published to Pushpin itself (POST 127.0.0.1:5561/publish/), never to this backend.
'use strict';
const http = require('http');
const PORT = +(process.env.PORT || 8090);
const server = http.createServer((req, res) => {
  const m = /^\/stream\/([A-Za-z0-9_.-]+)$/.exec(req.url.split('?')[0]);
  if (req.method !== 'GET' || !m) { res.writeHead(404); res.end('not found\n'); return; }
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    'Grip-Hold': 'stream',
    'Grip-Channel': m[1],
    // 30 s heartbeat, sent by Pushpin itself while the stream is idle
    'Grip-Keep-Alive': ':\\n\\n; format=cstring; timeout=30',
  });
  res.end(': ok\n\n');   // initial body; Pushpin keeps the client connection open
});
server.listen(PORT, '127.0.0.1', () => console.log(`grip backend on 127.0.0.1:${PORT}`));

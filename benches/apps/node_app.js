// The "real apps" bench's Node app: the `http` module, keep-alive (Node's defaults).
//   node benches/apps/node_app.js PORT
const http = require("http");
const body = "hello\n";
http
  .createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": body.length });
    res.end(body);
  })
  .listen(Number(process.argv[2]), "127.0.0.1");

// A plain Express 4 app for the differential suite: which handler does a real app run?
//
//   node tests/apps/express_app.js   (run with tests/apps as the cwd, or anywhere: it
//                                     resolves express from tests/apps/node_modules)
//
// Binds 127.0.0.1 on an ephemeral port, prints `LISTENING <port>` once it accepts
// connections, and exits when its stdin closes. Every response is 200 with an
// `X-Handler` header and a JSON body telling what the framework saw. Express defaults:
// case-insensitive, non-strict routing.
'use strict';

const express = require('express');

const methodOverride = require('method-override');
const common = require('./node_common');

const app = express();
// Legacy apps take PUT and DELETE from HTML forms this way: the X-HTTP-Method-Override
// header and a `_method` query parameter, on POST (the package's defaults).
app.use(methodOverride('X-HTTP-Method-Override'));
app.use(methodOverride('_method'));

function handler(name) {
  return (req, res) => {
    // Read the body fully (and drop it) so keep-alive works, then answer.
    req.on('data', () => {});
    req.on('end', () => {
      res.set('X-Handler', name);
      res.set('X-Identity', common.identity(req.headers));
      const status = common.askedStatus(req.query);
      if (status) {
        res.redirect(status, '/done');
        return;
      }
      res.status(200).json({
        handler: name,
        method: req.method,
        path: req.path,
        raw: req.originalUrl,
        host: req.hostname,
        read: common.read((n) => req.get(n), { 'req:ip': req.ip, 'req:protocol': req.protocol }),
        verified: req.get('x-verified-unique-in-site') ?? null,
        age_ok: req.get('x-verified-age-ok') ?? null,
      });
    });
    req.resume();
  };
}

app.all('/signup', handler('signup'));
app.all(['/checkout', '/checkout/*'], handler('checkout'));
app.all('*', handler('catchall'));

common.exitOnStdinEnd();

const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

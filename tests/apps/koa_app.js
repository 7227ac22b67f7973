// A plain Koa app with @koa/router for the differential suite: which handler does a real app
// run?
//
//   node tests/apps/koa_app.js
//
// Routes `/signup`, `/checkout` and `/checkout/{*rest}` with @koa/router's defaults
// (case-insensitive, trailing slash optional), and a catch-all middleware after the router.
// Binds 127.0.0.1 on an ephemeral port, prints `LISTENING <port>`, exits when its stdin
// closes; answers as node_common.js says.
'use strict';

const Koa = require('koa');
const Router = require('@koa/router');
const common = require('./node_common');

const app = new Koa();
const router = new Router();

function handler(name) {
  return async (ctx) => {
    // Read the body fully (and drop it) so keep-alive works.
    await new Promise((resolve) => {
      ctx.req.on('data', () => {});
      ctx.req.on('end', resolve);
      ctx.req.on('error', resolve);
      ctx.req.resume();
    });
    ctx.set('X-Handler', name);
    ctx.set('X-Identity', common.identity(ctx.headers));
    const status = common.askedStatus(ctx.query);
    if (status) {
      ctx.status = status;
      ctx.redirect('/done');
      ctx.status = status;
      return;
    }
    ctx.body = {
      handler: name,
      method: ctx.method,
      path: ctx.path,
      raw: ctx.originalUrl,
      host: ctx.hostname,
      read: common.read((n) => ctx.get(n) || undefined, { 'ctx:ip': ctx.ip, 'ctx:protocol': ctx.protocol }),
    };
  };
}

router.all('/signup', handler('signup'));
router.all('/checkout', handler('checkout'));
router.all('/checkout/{*rest}', handler('checkout'));
app.use(router.routes());
app.use(async (ctx, next) => {
  if (!ctx.get('X-Handler') && ctx.body === undefined) {
    await handler('catchall')(ctx);
  }
  return next();
});

common.exitOnStdinEnd();
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

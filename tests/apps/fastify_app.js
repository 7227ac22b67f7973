// A plain Fastify app for the differential suite: which handler does a real app run?
//
//   node tests/apps/fastify_app.js
//
// Routes `/signup`, `/checkout` and `/checkout/*`, and a catch-all `/*`, with Fastify's
// defaults (case-sensitive, trailing slash significant). Binds 127.0.0.1 on an ephemeral
// port, prints `LISTENING <port>`, exits when its stdin closes; answers as node_common.js says.
'use strict';

const fastify = require('fastify')({ logger: false });
const common = require('./node_common');

// A body of any type is read and dropped.
fastify.removeAllContentTypeParsers();
fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

function handler(name) {
  return async (request, reply) => {
    reply.header('X-Handler', name);
    reply.header('X-Identity', common.identity(request.headers));
    const status = common.askedStatus(request.query);
    if (status) {
      return reply.redirect('/done', status);
    }
    return {
      handler: name,
      method: request.method,
      path: request.url.split('?')[0],
      raw: request.raw.url,
      host: request.hostname,
      read: common.read((n) => request.headers[n], { 'req:ip': request.ip, 'req:protocol': request.protocol }),
    };
  };
}

fastify.all('/signup', handler('signup'));
fastify.all('/checkout', handler('checkout'));
fastify.all('/checkout/*', handler('checkout'));
fastify.all('/*', handler('catchall'));

common.exitOnStdinEnd();
fastify.listen({ port: 0, host: '127.0.0.1' }).then(() => {
  process.stdout.write(`LISTENING ${fastify.server.address().port}\n`);
});

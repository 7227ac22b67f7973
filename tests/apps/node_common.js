// What every Node app of the differential suite answers (express_app.js, fastify_app.js,
// koa_app.js): `X-Handler`, `X-Identity` (the identity header names that reached the app) and
// a JSON body with what the framework saw: handler, method, path, raw target, host, and
// `read`, the values of the identity, forwarding and override headers it received.
'use strict';

const PROTECTED = [
  'x-verified-unique-in-site',
  'x-verified-birth',
  'x-verified-gender',
  'x-verified-age-ok',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-prefix',
  'x-forwarded-port',
  'x-real-ip',
  'forwarded',
  'x-host',
  'x-original-host',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-url',
  'x-rewrite-url',
];

// `headers`: node's lower-cased header object; `get(name)`: the framework's own accessor.
function read(get, extra) {
  const out = {};
  for (const n of PROTECTED) {
    const v = get(n);
    if (v !== undefined && v !== null) out[n] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  for (const [k, v] of Object.entries(extra || {})) {
    if (v !== undefined && v !== null && v !== '') out[k] = String(v);
  }
  return out;
}

function identity(headers) {
  const seen = [...new Set(Object.keys(headers).filter((k) => k.startsWith('x-verified-')))].sort();
  return seen.length ? seen.join(',') : '-';
}

// The 3xx a test asks for with `?status=`, or null.
function askedStatus(query) {
  const s = query && query.status;
  return ['301', '302', '303', '307', '308'].includes(s) ? Number(s) : null;
}

// Exit when stdin closes, so a test that dies never leaves an app behind.
function exitOnStdinEnd() {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

module.exports = { PROTECTED, read, identity, askedStatus, exitOnStdinEnd };

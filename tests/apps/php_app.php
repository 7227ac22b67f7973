<?php
// A plain PHP router script for the differential suite, run by PHP's built-in server
// (`php -S`, see php_app.sh): routes `/signup`, `/checkout` and everything under it, and a
// catch-all, on the path PHP decoded (REQUEST_URI's path, as front controllers route).
// Answers `X-Handler` and a JSON body with what PHP saw: handler, method, path, raw target,
// host, and `read`: the identity, forwarding and override headers as PHP hands them to a
// script (`$_SERVER['HTTP_*']`: every `-` of a name folded to `_`) and the server variables
// a CGI-style server may take from a request (REMOTE_USER, SCRIPT_NAME, PATH_INFO, ...).
$protected = [
    'x-verified-unique-in-site', 'x-verified-birth', 'x-verified-gender', 'x-verified-age-ok',
    'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-prefix',
    'x-forwarded-port', 'x-real-ip', 'forwarded', 'x-host', 'x-original-host',
    'x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url',
    'x-rewrite-url',
];
$raw = $_SERVER['REQUEST_URI'] ?? '';
$path = rawurldecode(parse_url('http://x' . $raw, PHP_URL_PATH) ?? '');
if ($path === '/signup') {
    $handler = 'signup';
} elseif ($path === '/checkout' || strncmp($path, '/checkout/', 10) === 0) {
    $handler = 'checkout';
} else {
    $handler = 'catchall';
}
file_get_contents('php://input');
header('X-Handler: ' . $handler);
$seen = [];
foreach ($_SERVER as $k => $v) {
    if (strncmp($k, 'HTTP_X_VERIFIED_', 16) === 0) {
        $seen[] = strtolower(str_replace('_', '-', substr($k, 5)));
    }
}
sort($seen);
header('X-Identity: ' . ($seen ? implode(',', $seen) : '-'));
$status = $_GET['status'] ?? '';
if (in_array($status, ['301', '302', '303', '307', '308'], true)) {
    header('Location: /done', true, (int) $status);
    exit;
}
$read = [];
foreach ($protected as $n) {
    $k = 'HTTP_' . strtoupper(str_replace('-', '_', $n));
    if (isset($_SERVER[$k])) {
        $read[$n] = $_SERVER[$k];
    }
}
foreach (['REMOTE_USER', 'PHP_AUTH_USER', 'AUTH_TYPE', 'SCRIPT_NAME', 'PATH_INFO', 'ORIG_PATH_INFO', 'REMOTE_ADDR', 'HTTPS'] as $k) {
    if (isset($_SERVER[$k]) && $_SERVER[$k] !== '') {
        $read['server:' . $k] = $_SERVER[$k];
    }
}
header('Content-Type: application/json');
echo json_encode([
    'handler' => $handler,
    'method' => $_SERVER['REQUEST_METHOD'] ?? '',
    'path' => $path,
    'raw' => $raw,
    'host' => $_SERVER['HTTP_HOST'] ?? null,
    'server_name' => $_SERVER['SERVER_NAME'] ?? null,
    'read' => (object) $read,
], JSON_UNESCAPED_SLASHES);

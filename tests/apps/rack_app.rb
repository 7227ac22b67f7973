# A plain Rack app for the differential suite, served by Puma (Debian's `puma` and
# `ruby-rack`): which handler does a real app run?
#
#   ruby tests/apps/rack_app.rb
#
# Routes with Rack::URLMap as Rack apps mount handlers: `/signup` and `/checkout` (each with
# everything under it: URLMap matches whole segments and moves the matched part into
# SCRIPT_NAME), and `/` for the rest. Binds 127.0.0.1 on an ephemeral port, prints
# `LISTENING <port>` once it accepts connections, and exits when its stdin closes. Answers
# `X-Handler`, `X-Identity` and a JSON body with what Rack saw: handler, method, path
# (SCRIPT_NAME + PATH_INFO), raw target, host (Rack::Request#host), and `read`: the identity,
# forwarding and override headers (`HTTP_*`, every `-` folded to `_`) and the environment
# values a server may take from a request (REMOTE_USER, SCRIPT_NAME, PATH_INFO).
require 'json'
require 'rack'
require 'puma'
require 'puma/server'

PROTECTED = %w[
  x-verified-unique-in-site x-verified-birth x-verified-gender x-verified-age-ok
  x-forwarded-for x-forwarded-host x-forwarded-proto x-forwarded-prefix x-forwarded-port
  x-real-ip forwarded x-host x-original-host x-http-method-override x-http-method
  x-method-override x-original-url x-rewrite-url
].freeze

def handler(name)
  lambda do |env|
    req = Rack::Request.new(env)
    req.body&.read
    seen = env.keys.grep(/\AHTTP_X_VERIFIED_/).map { |k| k.sub(/\AHTTP_/, '').downcase.tr('_', '-') }.sort
    headers = { 'X-Handler' => name, 'X-Identity' => seen.empty? ? '-' : seen.join(',') }
    status = req.GET['status']
    if %w[301 302 303 307 308].include?(status)
      return [status.to_i, headers.merge('Location' => '/done'), []]
    end
    read = {}
    PROTECTED.each do |n|
      v = env["HTTP_#{n.upcase.tr('-', '_')}"]
      read[n] = v unless v.nil?
    end
    %w[REMOTE_USER SCRIPT_NAME PATH_INFO REMOTE_ADDR].each do |k|
      read["env:#{k}"] = env[k] unless env[k].nil? || env[k].empty?
    end
    read['req:ip'] = req.ip
    body = JSON.generate(
      handler: name,
      method: req.request_method,
      path: "#{env['SCRIPT_NAME']}#{env['PATH_INFO']}",
      raw: env['REQUEST_URI'],
      host: req.host,
      read: read
    )
    [200, headers.merge('Content-Type' => 'application/json'), [body]]
  end
end

app = Rack::URLMap.new(
  '/signup' => handler('signup'),
  '/checkout' => handler('checkout'),
  '/' => handler('catchall')
)

server = Puma::Server.new(app, Puma::Events.strings, min_threads: 0, max_threads: 4)
listener = server.add_tcp_listener('127.0.0.1', 0)
Thread.new do
  $stdin.read
  exit!(0)
end
server.run
$stdout.puts "LISTENING #{listener.addr[1]}"
$stdout.flush
sleep

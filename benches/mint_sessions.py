#!/usr/bin/env python3
"""Mint real verigate sessions through the sandbox's Iamport flow (redirect mode), for
benches/load.sh.

Usage: mint_sessions.py VG_PORT SB_PORT ADMIN_PORT COOKIE N BURST OUT

Every session is a whole flow, as a browser goes through it: verigate's start page (which sets
the flow cookie), the sandbox's certification form (a distinct person each time: the phone
number differs), then verigate's return URL, where verigate fetches the certification from
the sandbox with its Iamport token, checks it and sets the session cookie COOKIE. Nothing is
sealed here: every cookie is one verigate issued.

The first BURST sessions finish at once: their starts and certifications are done first, then
BURST threads wait at a barrier and send their returns together, BURST completions in flight
against a verigate that holds no Iamport token yet. The token fetches verigate made for them
are read from its /metrics (verigate_provider_token_fetches_total) and printed. The rest are
minted by a few threads over kept-alive connections.

Writes the N cookie values to OUT, one a line; prints one summary line; exits non-zero when a
flow fails.
"""
import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

vg_port, sb_port, admin_port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cookie_name, n, burst, out = sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
burst = min(burst, n)
# The first person's number (benches/soak.sh mints new people batch after batch).
offset = int(os.environ.get("MINT_PERSON_OFFSET", "0"))
FLOW = re.compile(r'<script id="verigate-flow" type="application/json">(.*?)</script>', re.S)
local = threading.local()


def conn(port):
    """This thread's kept-alive connection to port."""
    key = f"c{port}"
    c = getattr(local, key, None)
    if c is None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        setattr(local, key, c)
    return c


def request(port, method, target, body=None, headers=None, fresh=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60) if fresh else conn(port)
    try:
        c.request(method, target, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
    except (http.client.HTTPException, OSError):
        if fresh:
            raise
        # A kept-alive connection the server closed: once more on a new one.
        setattr(local, f"c{port}", None)
        return request(port, method, target, body, headers)
    finally:
        if fresh:
            c.close()
    return r.status, r.getheaders(), data


def set_cookie(headers, name):
    for k, v in headers:
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0].split("=", 1)[1]
    return None


def prepare(i):
    """Start page and certification: the return URL and the flow cookie to send it with."""
    status, headers, body = request(
        vg_port, "GET", "/.verigate/iamport/start?return_to=%2Fgated", headers={"Accept": "text/html"})
    m = FLOW.search(body.decode("utf-8", "replace"))
    if status != 200 or not m:
        raise SystemExit(f"start page: {status}")
    flow = json.loads(m.group(1))
    cookies = "; ".join(v.split(";", 1)[0] for k, v in headers if k.lower() == "set-cookie")
    form = urllib.parse.urlencode({
        "imp_code": flow["imp_code"], "merchant_uid": flow["merchant_uid"],
        "m_redirect_url": flow["m_redirect_url"], "name": "Bench Person", "birth": "19900101",
        "gender": "female", "phone": f"010{i + offset:08d}", "carrier": "SKT", "foreigner": "false"})
    status, headers, _ = request(sb_port, "POST", "/iamport/certify", body=form,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    back = dict((k.lower(), v) for k, v in headers).get("location")
    if status not in (302, 303, 307) or not back:
        raise SystemExit(f"sandbox certify: {status}")
    u = urllib.parse.urlsplit(back)
    return f"{u.path}?{u.query}", cookies


def complete(target, cookies, fresh=False):
    status, headers, _ = request(vg_port, "GET", target, fresh=fresh,
                                 headers={"Accept": "text/html", "Cookie": cookies})
    value = set_cookie(headers, cookie_name)
    if not value:
        raise SystemExit(f"return URL: {status}, no {cookie_name} cookie")
    return value


def token_fetches():
    _, _, body = request(admin_port, "GET", "/metrics", fresh=True)
    total = 0
    for line in body.decode().splitlines():
        if line.startswith("verigate_provider_token_fetches_total") and 'provider="iamport"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


t0 = time.monotonic()
cookies = [None] * n
with ThreadPoolExecutor(8) as pool:
    prepared = list(pool.map(prepare, range(burst)))
fetches0 = token_fetches()
gate = threading.Barrier(burst)
errors = []


def burst_one(i):
    target, flow_cookies = prepared[i]
    try:
        c = http.client.HTTPConnection("127.0.0.1", vg_port, timeout=60)
        c.connect()
        gate.wait()
        c.request("GET", target, headers={"Accept": "text/html", "Cookie": flow_cookies})
        r = c.getresponse()
        r.read()
        c.close()
        cookies[i] = set_cookie(r.getheaders(), cookie_name)
        if not cookies[i]:
            errors.append(f"return URL: {r.status}")
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(repr(e))


threads = [threading.Thread(target=burst_one, args=(i,)) for i in range(burst)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise SystemExit(f"{len(errors)} of {burst} simultaneous completions failed, first: {errors[0]}")
fetches = token_fetches() - fetches0


def mint(i):
    cookies[i] = complete(*prepare(i))


with ThreadPoolExecutor(8) as pool:
    list(pool.map(mint, range(burst, n)))
if len(set(cookies)) != n:
    raise SystemExit("some sessions came out identical")
with open(out, "w") as f:
    f.write("\n".join(cookies) + "\n")
print(f"minted {n:,} session{'s' if n > 1 else ''} through the sandbox flow in {time.monotonic() - t0:.1f} s; "
      f"Iamport token fetches for {burst:,} simultaneous completion{'s' if burst > 1 else ''}: {fetches}"
      + (" (verigate held no token before them)" if fetches0 == 0 else f" ({fetches0} before them)"))

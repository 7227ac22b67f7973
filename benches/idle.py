"""Hold many idle keep-alive connections open to one proxy, for benches/load.sh --idle.

    python3 benches/idle.py PORT PATH COOKIE N

Opens N connections to 127.0.0.1:PORT, sends one GET PATH (with `Cookie: vg=COOKIE`) on each,
reads its answer (Content-Length framed), keeps the connection open and idle, prints
`READY <open connections>` and holds them until its standard input closes.
"""

import asyncio
import sys


async def one(port, request):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"not 200: {head[:40]!r}")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return writer


async def main():
    port, path, cookie, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    request = f"GET {path} HTTP/1.1\r\nHost: shop.example\r\nCookie: vg={cookie}\r\n\r\n".encode()
    held = []
    # In batches, so that the proxy's accept queue never overflows.
    for start in range(0, n, 200):
        held += await asyncio.gather(*(one(port, request) for _ in range(min(200, n - start))))
    print(f"READY {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in held:
        w.close()


asyncio.run(main())

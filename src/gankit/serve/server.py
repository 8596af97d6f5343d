"""Running the application: a socket bound first (so that a port in use is one clear line), uvicorn on it."""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

import torch
import uvicorn

from gankit.errors import UserError
from gankit.serve.app import LOOPBACK, make_app
from gankit.serve.runs import open_runs

log = logging.getLogger("gankit")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), or a UserError naming what to change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"serve: --host {host!r} is not an address of this machine ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say they are
    # TCP, and with it on a kept-alive connection's response body waited ~40 ms for the client's delayed ACK
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise UserError(f"serve: cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None
    return sock


def url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"


def server(sources: list[str | Path], host: str = "127.0.0.1", port: int = 8765,
           threads: int | None = None) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn Server for the runs and its bound socket (`server.run(sockets=[sock])` serves until stopped)."""
    runs = open_runs(sources)
    if threads is not None:
        torch.set_num_threads(threads)
    if not is_loopback(host):
        log.warning(f"serve: listening on {host}, which other machines can reach; gankit serve has no "
                    "authentication: anyone who reaches the port sees these runs")
    hosts = LOOPBACK | {host.lower()} if is_loopback(host) else None
    sock = bind(host, port)
    config = uvicorn.Config(make_app(runs, hosts), log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config), sock


def serve(sources: list[str | Path], host: str = "127.0.0.1", port: int = 8765, threads: int | None = None,
          say=print) -> None:
    """`gankit serve`: serve the runs' pages on host:port until Ctrl-C."""
    srv, sock = server(sources, host, port, threads)
    say(f"gankit serve: {url(sock, host)}  ({len(srv.config.app.state.runs)} run(s); Ctrl-C stops)")
    try:
        srv.run(sockets=[sock])
    finally:
        sock.close()

"""``posediff serve``: bind the socket, load the model, run uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import math
import socket
import sys

from backend.http.app import DEFAULT_MAX_BODY_MB, create_app
from backend.http.auth import HostPolicy, TokenSource, is_loopback, resolve_token
from backend.http.jobs import JobQueue

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Exit status for a bad command line, a busy port or a missing model (as the CLI's bad input).
EXIT_USAGE = 2


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``posediff serve``'s options to ``parser``."""
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to bind (default 127.0.0.1; anything but loopback exposes the server to "
                             "the network, token or not)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 8765; 0 = any free port)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None,
                        help="run the model here (default: CUDA when available, else CPU)")
    parser.add_argument("--prior", "--weights", dest="prior", default=None, metavar="default|cmu|PATH",
                        help="the pose prior: default (the shipped research prior: research only, non-commercial), "
                             "cmu (CMU-only: commercial use OK) or the path of a .safetensors file; --weights is "
                             "the same option")
    parser.add_argument("--token-file", default=None,
                        help="where the token is kept when $POSEDIFF_TOKEN is not set "
                             "(default $POSEDIFF_TOKEN_FILE or ~/.config/posediff/token)")
    parser.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY_MB,
                        help="largest request body in MB (default 32; larger -> 413)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also accept this name in the Host header (repeatable)")
    parser.add_argument("--keep-jobs", type=int, default=64, help="finished jobs remembered (default 64)")
    parser.add_argument("--keep-results-mb", type=float, default=512.0,
                        help="most MB of finished jobs' results (JSON) remembered in all, oldest forgotten first "
                             "(default 512; a 60 s clip's estimate is about 55 MB)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                        help="server log level (default warning; 'info' logs every request)")


def _fail(message: str) -> int:
    print(f"posediff serve: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port).

    Raises:
        OSError: the port is in use (``errno.EADDRINUSE``) or the address cannot be bound.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, socktype, proto, _, addr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        if sys.platform != "win32":  # on Windows SO_REUSEADDR would let two servers share a port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve_command(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM (``posediff serve``).

    Checks the port before loading the model; prints one line when ready:
    ``posediff serving on http://HOST:PORT (device ..., token file ...)``.

    Returns:
        0 after a clean shutdown; 2 for a busy port, a bad option, missing weights or an
        unavailable device (with a one-line message on stderr).
    """
    if not 0 <= args.port <= 65535:
        return _fail(f"--port {args.port}: must be 0..65535")
    if not (args.max_body_mb > 0 and math.isfinite(args.max_body_mb)):
        return _fail(f"--max-body-mb {args.max_body_mb}: must be a positive number of megabytes")
    if args.keep_jobs < 1:
        return _fail(f"--keep-jobs {args.keep_jobs}: must be at least 1")
    if not (args.keep_results_mb > 0 and math.isfinite(args.keep_results_mb)):
        return _fail(f"--keep-results-mb {args.keep_results_mb}: must be a positive number of megabytes")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return _fail(f"port {args.port} on {args.host} is already in use (another 'posediff serve'?); "
                         "stop it or choose another port with --port")
        return _fail(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}")
    port = sock.getsockname()[1]
    if not is_loopback(args.host):
        print(f"posediff serve: WARNING: listening on {args.host}, not loopback: other machines can reach this "
              "server; anyone with the token can run the model and read image files", file=sys.stderr, flush=True)
    try:
        tokens: TokenSource = resolve_token(args.token_file)
    except (OSError, ValueError) as e:
        sock.close()
        return _fail(f"token: {e}")
    jobs = JobQueue(keep_finished=args.keep_jobs, keep_result_bytes=int(args.keep_results_mb * 2**20))
    try:
        from backend.prior.registry import PriorChoiceError
        from backend.service import PoseService

        # built on the worker thread that runs every request: all torch work stays on one thread
        # (one OpenMP team; see JobQueue.call)
        service = jobs.call(lambda: PoseService(weights=args.prior, device=args.device))
    except PriorChoiceError as e:
        jobs.close()
        sock.close()
        return _fail(str(e))
    except (FileNotFoundError, ValueError, OSError, RuntimeError) as e:
        jobs.close()
        sock.close()
        return _fail(f"cannot load the model: {e}")

    import uvicorn

    hosts = HostPolicy(args.host, port, frozenset(h.lower() for h in args.allow_host))
    asgi, _, _ = create_app(service, tokens.token, hosts, int(args.max_body_mb * 2**20), jobs)
    ready = (f"posediff serving on http://{_url_host(args.host)}:{port} "
             f"(device {service.device}, prior {service.prior.name}: {service.prior.licence_summary}, "
             f"{tokens.describe()})")
    config = uvicorn.Config(asgi, log_level=args.log_level, access_log=args.log_level in ("debug", "info"),
                            lifespan="on", timeout_graceful_shutdown=10, server_header=False)
    server = _Server(config, jobs, ready)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


class _Server:
    """uvicorn's Server, printing the ready line once listening and cancelling jobs on a signal."""

    def __new__(cls, config, jobs: JobQueue, ready: str):
        import uvicorn

        class Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets=sockets)
                if self.started:
                    print(ready, flush=True)

            def handle_exit(self, sig, frame):
                super().handle_exit(sig, frame)
                self._captured_signals.clear()  # a signal is how this server stops: exit 0, no re-raise
                with contextlib.suppress(RuntimeError):
                    asyncio.get_event_loop().call_soon_threadsafe(_cancel_all, jobs)

        return Server(config)


def _cancel_all(jobs: JobQueue) -> None:
    for job in jobs.list():
        jobs.cancel(job.id)


def main(argv: list[str] | None = None) -> int:
    """``python -m backend.http.serve [options]``: the same as ``posediff serve``."""
    parser = argparse.ArgumentParser(prog="posediff serve", description="PoseDiff local HTTP server")
    add_serve_arguments(parser)
    return serve_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

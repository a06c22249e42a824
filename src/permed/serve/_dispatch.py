"""The parent accepts, the workers serve: connections handed to worker processes in turn.

:class:`Dispatcher` runs in the parent of ``permed serve --workers N``. It owns the listening
socket, starts N worker processes (multiprocessing's ``spawn`` context, as uvicorn does), each
with its own end of a ``socketpair`` channel, and passes the file descriptor of every accepted
connection to the next ready worker (``SCM_RIGHTS``): connection i goes to worker i mod N. Each
worker runs a :class:`ChannelServer`, a :class:`uvicorn.Server` with no listener of its own that
adopts the connections arriving on its channel.

The channel also carries the other direction: a worker writes one byte when its application has
started (it is *ready*), and the parent sees the channel's end of file, or the process's
sentinel, the moment a worker dies. The parent accepts nothing until every worker is ready (so
the first kept-alive connections are spread evenly), skips a worker that is restarting, and
stops accepting while no worker is ready: connections then wait in the listen backlog.
Everything in the parent happens in one thread, around one ``selectors`` loop: accepting,
readiness, deaths and signals. With no more workers than CPUs, worker i runs on the i-th CPU
alone, as does its replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from uvicorn import Config, Server
from uvicorn.config import STARTUP_FAILURE

__all__ = ["ChannelServer", "Dispatcher"]

logger = logging.getLogger("uvicorn.error")

_READY = b"r"  # worker -> parent: the application has started
_CONNECTION = b"c"  # parent -> worker: one byte that carries one descriptor
_MAX_FDS = 64  # descriptors read from the channel per call
# before the first connection is accepted the parent waits for every worker, so that the first
# kept-alive connections are spread evenly; a worker that takes longer than this is not waited for
_FIRST_START_SECONDS = 120.0
_STOP_SECONDS = 30.0  # a worker still running this long after SIGTERM is killed
_TICK_SECONDS = 0.2  # how often the parent looks at its signals
_ACCEPT_LATER = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# uvicorn passes the listening sockets the same way: pickled for the spawned child
multiprocessing.allow_connection_pickling()
_spawn = multiprocessing.get_context("spawn")


class ChannelServer(Server):
    """A uvicorn server that serves the connections its parent passes down a channel.

    It starts the application (lifespan) without a listening socket, tells the parent it is
    ready, then adopts every descriptor that arrives on ``channel`` as an accepted connection
    (TLS included when the config has a certificate). When the channel reaches end of file (the
    parent died or stopped) the server shuts down gracefully.

    Parameters
    ----------
    config : uvicorn.Config
        The worker's configuration (application, TLS, logging).
    channel : socket.socket
        The worker's end of the ``AF_UNIX`` stream ``socketpair`` shared with the parent.
    """

    def __init__(self, config: Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel
        self._adopting: set[asyncio.Task[None]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start the application, with no listener, then read connections from the channel."""
        await super().startup(sockets=[])
        loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._receive, loop)
        try:
            self.channel.send(_READY)
        except OSError:  # the parent is gone already
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop reading the channel, stop the connections being adopted, then shut down."""
        asyncio.get_running_loop().remove_reader(self.channel.fileno())
        self.channel.close()
        for task in list(self._adopting):
            task.cancel()
        await super().shutdown(sockets=sockets)

    def _protocol(self) -> asyncio.Protocol:
        # what uvicorn's own create_protocol in Server.startup builds for each connection
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state)

    def _receive(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.channel, _MAX_FDS, _MAX_FDS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # reset: the parent died
                data, fds = b"", []
            for fd in fds:
                self._adopt(loop, socket.socket(fileno=fd))
            if not data:  # end of file: no parent, no more connections
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True
                return

    def _adopt(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        task = loop.create_task(self._connect(loop, sock))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def _connect(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(self._protocol, sock, ssl=self.config.ssl)
        except OSError as error:  # a failed TLS handshake, a client that left: the transport
            # closed the socket; the other connections carry on
            logger.debug("connection dropped before it was served: %s", error)


def _work(config: Config, channel: socket.socket,
          cpu: int | None) -> None:  # pragma: no cover (a child)
    """The target of a worker process: serve the connections that arrive on ``channel``, on
    ``cpu`` alone when given (before any thread starts, so that every thread inherits it)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    config.configure_logging()  # logging is set up again in each spawned child
    # Ctrl+C reaches the whole process group; the parent expects its workers to stop
    with contextlib.suppress(KeyboardInterrupt):
        ChannelServer(config, channel).run()


class _Worker:
    """The parent's side of one worker: its process and its end of the channel."""

    def __init__(self, config: Config, cpu: int | None) -> None:
        self.channel, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.process = _spawn.Process(target=_work, args=(config, child_end, cpu))
        try:
            self.process.start()
        finally:
            # only the child may hold its end: a descriptor sent to a dead worker then fails at
            # once instead of waiting in a buffer nobody reads, and the worker sees end of file
            # when the parent goes
            child_end.close()
        self.channel.setblocking(False)
        self.ready = False

    def hand_over(self, connection: socket.socket) -> bool:
        """Pass ``connection``'s descriptor to the worker; False if the worker cannot take it."""
        try:
            socket.send_fds(self.channel, [_CONNECTION], [connection.fileno()])
        except OSError:  # its queue is full, or it is gone (its sentinel will say so)
            return False
        return True

    def read(self) -> bool:
        """Read what the worker wrote; False at end of file (the worker is gone)."""
        try:
            data = self.channel.recv(64)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            data = b""
        if _READY in data:
            self.ready = True
        return bool(data)

    def stop(self) -> None:
        """Ask the worker to stop: SIGTERM, and end of file on its channel."""
        self.ready = False
        if self.process.exitcode is None:
            self.process.terminate()
        self.channel.close()

    def join(self, timeout: float) -> None:
        """Wait for the worker to end; kill it if it is still running after ``timeout``."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            logger.warning("worker process [%s] did not stop within %.0f s: killed",
                           self.process.pid, timeout)
            self.process.kill()
            self.process.join()


class Dispatcher:
    """Accept connections in this process and hand them to worker processes in turn.

    Parameters
    ----------
    config : uvicorn.Config
        The workers' configuration; each worker calls ``config.load()`` itself.
    listener : socket.socket
        The bound, listening socket (``config.bind_socket()``).
    workers : int
        Number of worker processes.
    pin : bool, default True
        With no more workers than CPUs this process may use, run worker i on the i-th of them
        alone (its replacement too). On the benchmark's two cores, two pinned workers spent
        about 10% less CPU per request than two the scheduler moved between cores (their
        caches stay warm), and had the lower p99 in each of 7 alternating pairs of runs
        (docs/serve.md). With more workers than CPUs, or ``pin=False``, the scheduler places
        them.

    Attributes
    ----------
    workers : list
        The current worker processes (``.process``), in hand-out order.
    cpus : list
        The CPU of each worker, or None where it is not pinned.
    startup_failed : bool
        True when a worker exited with uvicorn's ``STARTUP_FAILURE`` status, which stopped the
        service (its replacement would fail the same way).
    """

    def __init__(self, config: Config, listener: socket.socket, workers: int,
                 pin: bool = True) -> None:
        self.config = config
        self.listener = listener
        self.count = workers
        cpus = sorted(os.sched_getaffinity(0))
        self.cpus: list[int | None] = (list(cpus[:workers]) if pin and workers <= len(cpus)
                                       else [None] * workers)
        self.workers: list[_Worker] = []
        self.startup_failed = False
        self.should_exit = False
        self._next = 0
        self._accepting = False
        self._opened = False  # True once the first connection could be accepted
        self._selector = selectors.DefaultSelector()

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (or a worker that cannot start), then stop the workers.

        The workers get SIGTERM and end of file on their channel, finish the requests under way
        and exit; this returns when they have.
        """
        handlers = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        self.listener.listen(self.config.backlog)  # bind_socket only binds; asyncio listens
        self.listener.setblocking(False)
        started = time.monotonic()
        try:
            for index in range(self.count):
                self._start(index)
            while not self.should_exit:
                for key, _ in self._selector.select(_TICK_SECONDS):
                    key.data(key.fileobj)
                self._accept_when_ready(waited=time.monotonic() - started)
        finally:
            self._stop()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.should_exit = True

    def _start(self, index: int) -> None:
        worker = _Worker(self.config, self.cpus[index])
        if index < len(self.workers):
            self.workers[index] = worker
        else:
            self.workers.append(worker)
        self._watch(worker.channel, lambda _: self._on_message(worker))
        self._watch(worker.process.sentinel, lambda _: self._on_exit(worker))

    def _watch(self, fileobj: socket.socket | int, callback: Callable[[Any], None]) -> None:
        self._selector.register(fileobj, selectors.EVENT_READ, callback)

    def _forget(self, fileobj: socket.socket | int) -> None:
        with contextlib.suppress(KeyError, ValueError):  # not registered, or already closed
            self._selector.unregister(fileobj)

    def _accept_when_ready(self, waited: float) -> None:
        # accept only while a worker can take the connections (else they wait in the backlog),
        # and the first ones once every worker has started
        ready = [worker.ready for worker in self.workers]
        wanted = any(ready) and (self._opened or all(ready) or waited > _FIRST_START_SECONDS)
        if wanted and not self._accepting:
            self._watch(self.listener, self._accept)
        elif self._accepting and not wanted:
            self._forget(self.listener)
        self._accepting = wanted
        self._opened = self._opened or wanted

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno not in _ACCEPT_LATER:
                    raise
                # out of descriptors or memory: the connection waits in the backlog
                logger.error("could not accept a connection: %s", error)
                time.sleep(_TICK_SECONDS)
                return
            with connection:  # the worker holds its own copy once handed over
                self._hand_over(connection)

    def _hand_over(self, connection: socket.socket) -> None:
        count = len(self.workers)
        for step in range(count):
            index = (self._next + step) % count
            worker = self.workers[index]
            if worker.ready and worker.hand_over(connection):
                self._next = index + 1
                return
        logger.error("no worker process could take a connection: closed it")

    def _on_message(self, worker: _Worker) -> None:
        if not worker.read():  # end of file: the sentinel reports the exit
            worker.ready = False
            self._forget(worker.channel)

    def _on_exit(self, worker: _Worker) -> None:
        self._forget(worker.channel)
        self._forget(worker.process.sentinel)
        worker.process.join()
        worker.channel.close()
        pid, code = worker.process.pid, worker.process.exitcode
        if self.should_exit:
            return
        if code == STARTUP_FAILURE:  # the application cannot start: a new worker would fail
            logger.error("worker process [%s] failed to start: stopping the server", pid)
            self.startup_failed = True
            self.should_exit = True
            return
        logger.warning("worker process [%s] died (exit code %s); its connections were closed; "
                       "starting another", pid, code)
        self._start(self.workers.index(worker))

    def _stop(self) -> None:
        if self._accepting:
            self._forget(self.listener)
        for worker in self.workers:
            self._forget(worker.channel)
            self._forget(worker.process.sentinel)
            worker.stop()
        for worker in self.workers:
            worker.join(_STOP_SECONDS)
            if worker.process.exitcode == STARTUP_FAILURE:
                self.startup_failed = True
        self._selector.close()

"""HTTP(S) connections that put every socket of an attempt under the attempt's deadline.

`requests` hands socket work to urllib3 connection objects; these subclasses hook the two places
where an attempt touches a socket: opening a new connection (`_new_conn`: name resolution and
connect bounded by the time left, the new socket watched from before its TLS handshake) and
sending a request on a connection, new or reused from the pool (`request`: its socket watched).
Every redirect hop passes through `request`, so the whole chain shares one deadline.
See `deadline` for why a watched socket cannot outlive the deadline.
"""

from __future__ import annotations

import socket

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from mlimages.download import deadline


class DeadlineConnectionMixin:
    """Mixed into urllib3's connection classes; a no-op on threads without a current clock."""

    def _new_conn(self) -> socket.socket:
        clock = deadline.current()
        if clock is None:
            return super()._new_conn()
        if clock.left_s() <= 0:
            raise ConnectTimeoutError(self, f"deadline of {clock.seconds} s passed before connecting to {self.host}")
        try:
            addresses = deadline.resolve(self._dns_host, self.port, clock.left_s())
        except TimeoutError as error:
            raise ConnectTimeoutError(self, str(error)) from None
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        return self._connect_any(addresses, clock)

    def _connect_any(self, addresses: list[tuple], clock: deadline.AttemptClock) -> socket.socket:
        """Connect to the first address that answers, each try bounded by the connect timeout and the deadline."""
        connect_s = self.timeout if isinstance(self.timeout, (int, float)) else clock.seconds
        error: OSError | None = None
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(max(0.001, min(connect_s, clock.left_s())))
                clock.watch(sock)
                sock.connect(address)
                self._watched_by = clock
                return sock
            except OSError as failure:
                error = failure
                sock.close()
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out ({error})")
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")

    def request(self, *args, **kwargs):
        clock = deadline.current()
        if clock is not None and self.sock is not None and getattr(self, "_watched_by", None) is not clock:
            clock.watch(self.sock)
            self._watched_by = clock
        return super().request(*args, **kwargs)


class DeadlineHTTPConnection(DeadlineConnectionMixin, HTTPConnection):
    pass


class DeadlineHTTPSConnection(DeadlineConnectionMixin, HTTPSConnection):
    pass


class DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = DeadlineHTTPConnection


class DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = DeadlineHTTPSConnection


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """A `requests` adapter whose connection pools use the deadline-aware connections."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": DeadlineHTTPPool, "https": DeadlineHTTPSPool}

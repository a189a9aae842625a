"""The cheap load probe: active downloads by filtered ``torrents/info``, free space from ``sync/maindata``.

Only for instances whose limits or strategy need them, and the free space at
most once a minute: a full listing or ``sync/maindata`` costs seconds on an
instance holding thousands of torrents.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from magnetd import logs
from magnetd.balance.load import active_filters, count_active
from magnetd.balance.router import Balance

log = logs.get(__name__)


@runtime_checkable
class LoadApi(Protocol):
    """The two calls the load probe makes (a :class:`magnetd.delivery.qbittorrent.Client`)."""

    def filtered(self, state_filter: str) -> list[dict[str, Any]]: ...

    def free_space(self) -> int: ...


def probe_load(balance: Balance, name: str, client: object, webapi: str = "") -> None:
    """Read what ``balance`` needs of instance ``name`` (WebAPI version ``webapi``); an InstanceError
    passes up."""
    inst = next(i for i in balance.instances if i.name == name)
    if not isinstance(client, LoadApi):
        return  # a test's fake client without load calls
    loads = balance.loads
    if balance.needs_active(inst):
        counted_at = loads.now()
        listed = [t for f in active_filters(webapi) for t in client.filtered(f)]
        active = count_active(listed)
        loads.set_active(name, active, counted_at)
        log.debug("load_probed", instance=name, active=active, listed=len(listed))
    if balance.needs_free(inst) and loads.free_due(name):
        free = client.free_space()
        loads.set_free(name, free)
        log.debug("free_space_read", instance=name, free=free)

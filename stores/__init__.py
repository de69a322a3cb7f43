"""hostsmith's event store backends, each behind the runtime's `EventStore` protocol.

`open_store(url)` opens one by URL; every backend passes the same contract
suite (tests/test_store_contract.py).
"""

from hostsmith.stores._open import open_store as open_store
from hostsmith.stores._sqlite import SQLiteStore as SQLiteStore

__all__ = ["SQLiteStore", "open_store"]

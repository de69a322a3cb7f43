"""hostsmith's event store backends, each behind the runtime's `EventStore` protocol.

`open_store(url)` opens one by URL; every backend passes the same contract
suite, which ships as `hostsmith.stores.testing` so that a store registered
from another package can run it too.
"""

from hostsmith.stores._aws import aws_session as aws_session
from hostsmith.stores._backup import (
    BackupError as BackupError,
    BackupManifest as BackupManifest,
    back_up as back_up,
    read_manifest as read_manifest,
    restore as restore,
)
from hostsmith.stores._migrate import (
    MigrationError as MigrationError,
    MigrationReport as MigrationReport,
    Verification as Verification,
    migrate as migrate,
    verify as verify,
)
from hostsmith.stores._open import init_store as init_store, open_store as open_store
from hostsmith.stores._sqlite import SQLiteStore as SQLiteStore

__all__ = [
    "BackupError",
    "BackupManifest",
    "MigrationError",
    "MigrationReport",
    "SQLiteStore",
    "Verification",
    "aws_session",
    "back_up",
    "init_store",
    "migrate",
    "open_store",
    "read_manifest",
    "restore",
    "verify",
]

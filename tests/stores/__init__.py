"""The event stores: the contract on every backend, each backend's own cases, migration."""

"""What the tests share: the daemon harness, Host Factory's shapes, a moto process, a tiny provider."""

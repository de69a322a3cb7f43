"""Providers: the sim cloud, AWS on moto, and a third provider through the registry."""

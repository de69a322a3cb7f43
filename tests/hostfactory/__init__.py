"""The Host Factory domain, pure: templates, capacity, requests."""

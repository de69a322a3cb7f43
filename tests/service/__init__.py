"""The service: the five calls, config, the error tree, fuzzed inputs, the proof's checks."""

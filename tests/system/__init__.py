"""Real processes: the daemon end to end, two daemons, crashes, the CLI, load, simulation, soak."""

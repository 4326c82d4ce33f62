"""Harnesses shared by the tests and the benches (not shipped in the wheel): private Redis and PostgreSQL,
a multi-node local Ray cluster, servers as subprocesses, fault drills, replica timelines."""

"""Launchers: start ranks that each run `minicluster worker`."""

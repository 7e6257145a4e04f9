"""minicluster: a distributed-training validation harness."""

__version__ = "0.1.0"

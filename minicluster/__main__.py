"""`python -m minicluster` entry point."""

from minicluster.cli import main

raise SystemExit(main())

"""`python -m minicluster` entry point."""

import sys

try:
    from minicluster.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command's modules load: no traceback either
    print("minicluster: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())

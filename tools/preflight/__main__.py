"""`python -m tools.preflight --stack STACK`: see tools/preflight/cli.py."""

import sys

from tools.preflight.cli import main

sys.exit(main())

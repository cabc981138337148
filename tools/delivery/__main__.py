"""``python -m tools.delivery``: see :mod:`tools.delivery.cli`."""

import sys

from tools.delivery.cli import main

sys.exit(main())

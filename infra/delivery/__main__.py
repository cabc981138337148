"""``python -m infra.delivery``: see :mod:`infra.delivery.cli`."""

import sys

from infra.delivery.cli import main

sys.exit(main())

"""``python -m stacks.plan``: see ``stacks.plan.cli``."""

import sys

from stacks.plan.cli import main

sys.exit(main())

"""``python -m drills.silent_faults``: see :mod:`drills.silent_faults.cli`."""

import sys

from drills.silent_faults.cli import main

sys.exit(main())

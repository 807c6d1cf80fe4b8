"""``python -m drills.celery_failover``: see :mod:`drills.celery_failover.cli`."""

import sys

from drills.celery_failover.cli import main

sys.exit(main())

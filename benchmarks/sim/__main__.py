"""`python -m benchmarks.sim sim --chips ...` (same as `lightfence bench sim ...`)."""

import sys

from benchmarks.sim.cli import main

sys.exit(main())

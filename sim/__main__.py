"""`python -m sim sim --chips ...` (same as `lightfence bench sim ...`)."""

import sys

from sim.cli import main

sys.exit(main())

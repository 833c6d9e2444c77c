import sys

from lightfence.cli import main

sys.exit(main())

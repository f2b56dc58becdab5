"""`python -m animegen ...` (also what `torchrun -m animegen` runs)."""

import sys

from animegen.cli import main

sys.exit(main())

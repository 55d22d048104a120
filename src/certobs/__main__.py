"""``python -m certobs``: the certobs command."""

import sys

from certobs._cli import main

sys.exit(main())

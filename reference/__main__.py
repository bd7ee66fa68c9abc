"""``python -m vaelac`` is the ``vaelac`` command."""

import sys

from .cli import main

sys.exit(main())

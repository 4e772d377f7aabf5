"""``python -m ddsp_augment`` = the ``ddsp-augment`` command."""

import sys

from .cli import main

sys.exit(main())

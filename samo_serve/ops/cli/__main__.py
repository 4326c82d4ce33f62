"""``python -m samo_serve.ops.cli``: the ``samo-serve`` command (tests and benches start it this way)."""

import sys

from samo_serve.ops.cli import main

sys.exit(main())

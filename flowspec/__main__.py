"""``python -m flowspec``: the ``flowspec`` command (needed by ``torchrun -m flowspec``)."""

import sys

from flowspec.cli import main

if __name__ == "__main__":
    sys.exit(main())

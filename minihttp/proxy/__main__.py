"""``python -m minihttp.proxy``: the forward proxy's command line (same as ``minihttp proxy``)."""

import sys

from minihttp.proxy.handler import main

sys.exit(main())

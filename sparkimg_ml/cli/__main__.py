"""``python -m sparkimg_ml.cli``: the ``sparkimg-ml`` command."""

from . import main

raise SystemExit(main())

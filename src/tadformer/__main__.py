"""``python -m tadformer`` entry point."""

from tadformer.cli import main

raise SystemExit(main())

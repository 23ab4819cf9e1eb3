"""Allow `python -m publisher`."""

from publisher.cli import main

raise SystemExit(main())

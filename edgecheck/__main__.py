"""`python -m edgecheck` is the `edgecheck` command."""

from edgecheck.cli import main

raise SystemExit(main())

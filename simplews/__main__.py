"""``python -m simplews``: the command line (see :mod:`simplews.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m streams`: run one stream worker (settings from CLICKSTREAM_* variables)."""

from __future__ import annotations

import sys

from clickstream.logs import setup_logging
from clickstream.settings import WorkerSettings
from streams.app import create_app


def main() -> None:
    settings = WorkerSettings()
    setup_logging(settings)
    app = create_app(settings)
    level = {"warning": "warn", "critical": "crit"}.get(settings.log_level.lower(),
                                                         settings.log_level.lower())
    sys.argv = [sys.argv[0], "worker", "--loglevel", level]
    app.main()


if __name__ == "__main__":
    main()

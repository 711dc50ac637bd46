"""`python -m streams`: run one stream worker (settings from CLICKSTREAM_* variables)."""

from __future__ import annotations

import gc
import sys

from clickstream.logs import setup_logging
from clickstream.settings import WorkerSettings
from streams.app import create_app


def main() -> None:
    settings = WorkerSettings()
    setup_logging(settings)
    app = create_app(settings)
    # The worker allocates many short-lived objects per event and keeps large long-lived
    # ones (parsers, lists, caches): full collections that rescan the latter cost a fifth
    # of its CPU. Freeze what startup built and collect the old generations rarely.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1_000)
    level = {"warning": "warn", "critical": "crit"}.get(settings.log_level.lower(),
                                                         settings.log_level.lower())
    sys.argv = [sys.argv[0], "worker", "--loglevel", level]
    app.main()


if __name__ == "__main__":
    main()

"""`clickstream` command line: up, sql, migrate, status, and the single services."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from clickstream.settings import (
    CollectorSettings,
    CommonSettings,
    SinkSettings,
    WorkerSettings,
)

err = Console(stderr=True)


def cmd_up(args: argparse.Namespace) -> int:
    from clickstream.up import run_up

    return run_up(CollectorSettings(), demo=args.demo, rate=args.rate, port=args.port,
                  duration=args.duration)


def cmd_sql(args: argparse.Namespace) -> int:
    from sinks.connect import open_store
    from sinks.store import FORMATS, StoreError

    settings = CommonSettings()
    store = open_store(settings)
    try:
        sys.stdout.write(store.query_text(args.query, FORMATS[args.format]))
    except StoreError as exc:
        err.print(f"[red]query failed:[/red] {exc}")
        return 1
    finally:
        store.close()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from sinks.cluster import ClusterError
    from sinks.connect import open_store
    from sinks.migrate import default_params, migrate, script

    settings = CommonSettings()
    cluster = settings.clickhouse_cluster
    try:
        if args.dry_run:  # no store needed: render, print, done
            sys.stdout.write(script(default_params(settings.database, settings), cluster))
            return 0
        if cluster and not settings.clickhouse_url:
            err.print("[red]CLICKSTREAM_CLICKHOUSE_CLUSTER needs CLICKSTREAM_CLICKHOUSE_URL[/red]"
                      ": the embedded chDB store is one node")
            return 2
        store = open_store(settings)
        try:
            ran = migrate(store, settings.database, cluster=cluster)
        finally:
            store.close()
    except ClusterError as exc:
        err.print(f"[red]migrate failed:[/red] {exc}")
        return 1
    err.print(f"applied: {', '.join(ran)}" if ran else "schema is up to date")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from sinks.connect import open_store
    from sinks.erase import erase
    from sinks.store import StoreError

    settings = CommonSettings()
    kind, subject = ("visitor", args.visitor) if args.visitor else ("user", args.user)
    store = open_store(settings)
    try:
        counts = erase(store, settings.database, args.site, kind, subject,
                       settings.clickhouse_cluster)
    except (StoreError, ValueError) as exc:
        err.print(f"[red]erase failed:[/red] {exc}")
        return 1
    finally:
        store.close()
    total = sum(counts.values())
    err.print(f"erased {kind} from site {args.site}: {total:,} rows "
              f"({', '.join(f'{t} {n}' for t, n in counts.items())}); audit in erasure_log")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from clickstream.liveview import run_live

    return run_live(args.site, url=args.url, interval=args.interval, once=args.once)


def cmd_status(args: argparse.Namespace) -> int:
    from clickstream.status import print_status

    return print_status(CommonSettings())


def cmd_settings(args: argparse.Namespace) -> int:
    """Print every setting with its environment variable and documentation."""
    from rich.table import Table

    table = Table("variable", "default", "description", title="CLICKSTREAM_* settings")
    seen: set[str] = set()
    for cls in (CommonSettings, CollectorSettings, WorkerSettings, SinkSettings):
        for name, info in cls.model_fields.items():
            if name in seen:
                continue
            seen.add(name)
            table.add_row(f"CLICKSTREAM_{name.upper()}", repr(info.default),
                          info.description or "")
    Console().print(table)
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    if args.command == "collector":
        from producers.collector.app import main as run
    elif args.command == "worker":
        from streams.__main__ import main as run
    else:
        from sinks.service import main as run
    run()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from clickstream.topics import create_topics_sync

    settings = CommonSettings()
    if not settings.kafka_bootstrap:
        err.print("[red]CLICKSTREAM_KAFKA_BOOTSTRAP is not set[/red]: point it at your Kafka")
        return 2
    created = create_topics_sync(settings)
    err.print(f"created: {', '.join(created)}" if created else "all topics exist")
    return 0


def cmd_loadgen(args: argparse.Namespace) -> int:
    from producers.loadgen.cli import main as run_loadgen

    return run_loadgen(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clickstream", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole pipeline in the foreground")
    up.add_argument("--demo", action="store_true", help="also send synthetic traffic")
    up.add_argument("--rate", type=float, default=2000.0,
                    help="demo events per second (default 2000)")
    up.add_argument("--port", type=int, default=None, help="collector port (default 8080)")
    up.add_argument("--duration", type=float, default=None,
                    help="stop by itself after this many seconds")
    up.set_defaults(fn=cmd_up)
    sql = sub.add_parser("sql", help="run a SQL query against the store")
    sql.add_argument("query")
    sql.add_argument("--format", choices=["tsv", "csv", "json", "pretty"], default="pretty")
    sql.set_defaults(fn=cmd_sql)
    mig = sub.add_parser("migrate", help="apply schema migrations")
    mig.add_argument("--dry-run", action="store_true",
                     help="print every statement a fresh database gets (the cluster variant "
                     "with CLICKSTREAM_CLICKHOUSE_CLUSTER set) without connecting")
    mig.set_defaults(fn=cmd_migrate)
    sub.add_parser("status", help="what runs, and what is stored").set_defaults(fn=cmd_status)
    live = sub.add_parser("live", help="a site's traffic right now, refreshing")
    live.add_argument("site")
    live.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    live.add_argument("--once", action="store_true", help="print one frame and exit")
    live.add_argument("--url", default=None,
                      help="sink URL (default: the stack `clickstream up` runs)")
    live.set_defaults(fn=cmd_live)
    erase = sub.add_parser("erase", help="delete one person's rows from every table (GDPR)")
    erase.add_argument("--site", required=True)
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--visitor", help="visitor id (anonymous_id or cookieless id)")
    who.add_argument("--user", help="user id given to identify")
    erase.set_defaults(fn=cmd_erase)
    sub.add_parser("settings", help="list every setting").set_defaults(fn=cmd_settings)
    for name in ("collector", "worker", "sink"):
        sub.add_parser(name, help=f"run only the {name}").set_defaults(fn=cmd_service)
    topics = sub.add_parser("topics", help="manage Kafka topics")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(fn=cmd_topics)
    loadgen = sub.add_parser("loadgen", help="send realistic traffic (HTTP or Kafka), write "
                             "its ground truth")
    from producers.loadgen.cli import add_arguments as loadgen_arguments

    loadgen_arguments(loadgen)
    loadgen.set_defaults(fn=cmd_loadgen)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.fn(args)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)

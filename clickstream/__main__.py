"""`python -m clickstream` = the `clickstream` command."""

from clickstream.cli import main

main()

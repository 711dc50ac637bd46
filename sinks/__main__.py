"""`python -m sinks`: run the ClickHouse sink."""

from sinks.service import main

if __name__ == "__main__":
    main()

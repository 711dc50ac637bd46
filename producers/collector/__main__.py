"""`python -m producers.collector`: run the HTTP collector."""

from producers.collector.app import main

if __name__ == "__main__":
    main()

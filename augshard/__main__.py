"""`python -m augshard` entry point."""

from augshard.cli import main

if __name__ == "__main__":
    main()

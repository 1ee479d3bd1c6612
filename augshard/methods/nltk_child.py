"""The nltk calls `augshard prepare` makes in a child process: `python -m augshard.methods.nltk_child COMMAND`.

Commands: verify, download PACKAGE DIR, server-url. A child, so that the NLTK_DATA under test is read fresh and a
hanging download can be killed; nltk is imported only inside each command. Nothing imports this module (`-m` runs
it once); `provision.run_child` starts it.
"""

from __future__ import annotations

import argparse
import json
import sys


def verify() -> int:
    """Load the data NLTK_DATA points at and print real answers from it as one JSON line."""
    import nltk
    from nltk.corpus import stopwords, wordnet
    from nltk.tag.mapping import map_tag

    syn = wordnet.synsets("happy")
    tags = nltk.pos_tag(["The", "dog", "runs", "quickly", "."])
    result = {
        "synsets": [s.name() for s in syn],
        "definition": syn[0].definition() if syn else "",
        "tags": [t for _, t in tags],
        "the_is_stopword": "the" in stopwords.words("english"),
        "nn_universal": map_tag("en-ptb", "universal", "NN"),
    }
    print(json.dumps(result))
    return 0


def download(package: str, download_dir: str) -> int:
    """nltk.download one package into `download_dir`; exit status 0 when it says it succeeded."""
    import nltk

    ok = nltk.download(package, download_dir=download_dir, quiet=True, raise_on_error=False)
    return 0 if ok else 1


def server_url() -> int:
    """Print the URL of nltk's downloader index."""
    from nltk.downloader import Downloader

    print(Downloader.DEFAULT_URL)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m augshard.methods.nltk_child", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("verify", help="load the data on NLTK_DATA and print what it answers (JSON)")
    fetch = commands.add_parser("download", help="nltk.download(PACKAGE, download_dir=DIR)")
    fetch.add_argument("package")
    fetch.add_argument("download_dir")
    commands.add_parser("server-url", help="print nltk's downloader index URL")
    args = parser.parse_args(argv)
    if args.command == "verify":
        return verify()
    if args.command == "download":
        return download(args.package, args.download_dir)
    return server_url()


if __name__ == "__main__":
    sys.exit(main())

"""The entry of a shard's fresh process (`python -m augshard.runner.shard_process FD`, started by
`executors.run_job_in_fresh_process`): a module nothing imports, so `-m` executes it once. (Run as
`-m augshard.runner.executors`, the package's own import of executors came first and runpy warned, on every Dask
shard, that
the module would execute a second time.)"""

from __future__ import annotations

import sys

from augshard.runner.executors import shard_process_main

if __name__ == "__main__":
    sys.exit(shard_process_main(sys.argv[1]))

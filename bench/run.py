"""Every speed benchmark in one run, each a ratio against a reference measured in it.

    python -m bench [--data PATH] [--quick]

Runs `bench.time_to_accuracy`, `bench.efficiency` and `bench.serving` (the
last on the model the first trained), prints one table and writes
bench/results.json with the machine record. `--quick` shrinks every part to
seconds (used by a test so the benchmark cannot rot); its figures mean nothing.
Each module also runs alone and updates its own part of the results.
"""

import dataclasses
import json
import os
import sys

from bench import common, efficiency, serving, time_to_accuracy
from bench.machine import format_machine, machine


def main(argv=None):
    parser = common.parser(__doc__)
    time_to_accuracy.add_arguments(parser)
    args = parser.parse_args(argv)
    config, splits = common.config_and_splits(args.data, args.quick)
    results = {"machine": machine(), "config": dataclasses.asdict(config), "quick": args.quick}

    results["time_to_accuracy"], model = time_to_accuracy.time_to_accuracy(
        config, splits, args.quick, args.work_dir, time_to_accuracy.schedules_of(args))
    time_to_accuracy.plot_time_to_accuracy(results["time_to_accuracy"], args.plot,
                                           results["machine"])
    results.update(efficiency.efficiency(config, splits, args.quick, args.work_dir))
    results.update(serving.serving(model, args.work_dir, *splits["test"], args.quick))

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=2)
    print(format_table(results))
    print(f"\nWrote {args.output}")
    return 0


def format_table(r):
    """The whole run's table: the machine, then each part's."""
    return "\n".join([format_machine(r["machine"]), "",
                      time_to_accuracy.format_time_to_accuracy(r["time_to_accuracy"]),
                      efficiency.format_efficiency(r), serving.format_serving(r)])


if __name__ == "__main__":
    sys.exit(main())

"""The offline check of template.yaml, split by concern.

infra/check_template.py is the entry point and describes what is checked.
The modules:

- cfn: paths, loading, the SAM transform, cfn-lint, the intrinsic helpers
  (resolve, referenced, as_list), the problem collector check() and the
  Context every check receives.
- expected: FUNCTIONS and QUEUES, the per-function (environment, event source,
  exact IAM grants) and per-queue (FIFO or standard) expectations the other
  modules share.
- functions: functions, queues and event source mappings, the schedule and
  the stack outputs.
- security: the lake bucket's protection and the IAM roles (one per
  function, no managed policy, exactly the grants of expected.FUNCTIONS).
- files: local files the template names, workspace members, sample events.
- glue: the Athena database and table over the curated zone (location,
  Parquet, the curated files' columns and types, partition keys, partition
  projection of ticker and year; no crawler).
- observability: the functions' LoggingConfig and the dashboard (metric
  names read from shared/core/src/metrics/mod.rs), and the helpers
  operations shares.
- operations: the alarms and their SNS topic, the schedules' dead-letter
  queues, infra/local/env.json and samconfig.toml.
- run: main(), which runs the checks of CHECKS in order and prints the result.

A new check is a function taking a Context, appended to the right list in run.
"""

from .run import main

__all__ = ["main"]

#!/usr/bin/env python3
"""Offline check of the SAM template (no AWS account, no network).

    python3 infra/check_template.py

1. Transforms template.yaml with aws-sam-translator, as `sam deploy` would
   (local CodeUri paths replaced by an S3 URI, as `sam package` does).
2. Lints the original template with cfn-lint (which runs the SAM transform
   itself) and the translated CloudFormation too; any error fails, warnings
   are printed.
3. Asserts on the translated CloudFormation what cfn-lint cannot know: the
   runtime, architecture and handler of the four functions, their timeouts,
   the SQS event source mappings (ReportBatchItemFailures, MaximumConcurrency,
   BatchSize; no batching window on FIFO queues), visibility timeouts of at
   least six times the consumer's timeout, the queue types (fetch standard;
   transform and load FIFO with content-based deduplication, names and URLs
   ending in .fifo, FIFO dead-letter queues) and redrive policies, the
   schedule, the bucket's protection, the environment of DESIGN.md section 7
   (MARKET_DATA_API_CONCURRENCY=1 for fetch; optional settings unset unless
   their parameter is given), and one execution role per function, declared
   in the template with no managed policy (no AWSLambdaSQSQueueExecutionRole),
   allowing exactly the actions each function needs on exactly its queues,
   lake prefixes, secret and log group; no s3/sqs/secretsmanager grant on "*".
4. Checks that every local file the template names exists (the functions/
   crates may still be missing; when present they must be the workspace
   members whose package and binary the template names) and that the sample
   events in events/ match the template and the section 3/4 contracts
   (records of FIFO queues grouped by the message's ticker).

Needs the versions pinned in tests/requirements.txt (aws-sam-translator,
cfn-lint). Exits 1 with one line per problem.

The checks live in the package infra/template_check/, one module per concern
(its __init__ lists them); this file only runs it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from template_check import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

"""What the template must declare for each function, shared by every module.

One table, so a function added to the pipeline is described once: its crate
and binary, timeout, the queue it consumes, and what its IAM role may reach.
The functions, security and files checks all read it.
"""

from __future__ import annotations

from typing import Any

# The four functions: crate/binary, timeout (s), the queue they consume, the
# queues they may send to, and the lake prefixes they may write.
FUNCTIONS: dict[str, dict[str, Any]] = {
    "ValidateFunction": {
        "binary": "validate",
        "timeout": 60,
        "source": None,
        "send": {"FetchQueue"},
        "put": set(),
        "secret": False,
    },
    "FetchFunction": {
        "binary": "fetch",
        "timeout": 300,
        "source": "FetchQueue",
        "send": {"TransformQueue", "FetchDLQ"},
        "put": {"lake/raw/"},
        "secret": False,
    },
    "TransformFunction": {
        "binary": "transform",
        "timeout": 120,
        "source": "TransformQueue",
        "send": {"LoadQueue", "TransformDLQ"},
        "put": {"lake/curated/", "lake/state/"},
        "secret": False,
    },
    "LoadFunction": {
        "binary": "load",
        "timeout": 300,
        "source": "LoadQueue",
        "send": {"LoadDLQ"},
        "put": set(),
        "secret": True,
    },
}
LAKE_PREFIX = "lake"

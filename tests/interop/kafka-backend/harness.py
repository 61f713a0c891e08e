"""The small check harness the Kafka-backend suites share: PASS/FAIL lines, a summary line
"N passed, N failed", and polling that tolerates a broker being down."""

import os
import time

_counts = {"passed": 0, "failed": 0}


def check(name, fn):
    # ONLY=substring runs the checks whose names hold it (one check while working on it).
    if os.environ.get("ONLY") and os.environ["ONLY"] not in name:
        return
    t0 = time.time()
    try:
        fn()
        _counts["passed"] += 1
        print(f"PASS {name} ({(time.time() - t0) * 1000:.0f} ms)", flush=True)
    except Exception as e:  # noqa: BLE001 - a failed check reports whatever went wrong
        _counts["failed"] += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)


def require(cond, msg):
    if not cond:
        raise AssertionError(msg)


def wait_for(cond, timeout, what):
    """Polls cond; an exception (a metadata request failing while a broker is down) counts as
    not yet."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            if cond():
                return
        except Exception as e:  # noqa: BLE001 - librdkafka reports a dropped connection as an error
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def finish():
    """Prints the summary and exits non-zero if any check failed."""
    print(f"{_counts['passed']} passed, {_counts['failed']} failed")
    raise SystemExit(1 if _counts["failed"] else 0)

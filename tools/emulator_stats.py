"""Prints what the kit's emulator enforced so far, from its `GET /_kit/stats`.

    .venv/bin/python tools/emulator_stats.py http://127.0.0.1:5000

One line of counts (requests denied by IAM, DynamoDB requests throttled and conflicted,
requests retried after either, SQS messages refused and expired), then each denial.
Exits 1 when a request was denied: in AWS the same request would have failed.
"""

import json
import sys
import urllib.request


def main(endpoint):
    with urllib.request.urlopen(endpoint.rstrip("/") + "/_kit/stats", timeout=10) as answer:
        stats = json.loads(answer.read())
    denied = stats["denied"]
    limits = stats["limits"]
    print(
        f"emulator: {len(denied)} requests denied (IAM), {stats['throttled']} throttled and "
        f"{stats['conflicted']} conflicted (DynamoDB, partitions at {limits['partition_scale']:g} "
        f"of 1,000 write units a second, transactions holding their items "
        f"{limits['transaction_ms']:g} ms), {stats['retried']} retried, {stats['refused']} "
        f"refused and {stats['expired']} expired (SQS)"
    )
    for d in denied:
        print(f"  denied: {d['principal']} {d['action']} on {d['resource']}")
    return 1 if denied else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: emulator_stats.py ENDPOINT")
    sys.exit(main(sys.argv[1]))

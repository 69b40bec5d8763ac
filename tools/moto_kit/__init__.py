"""What `tools/emulator.py` adds to moto, one module per concern.

- `iam`: identity policies enforced on every request, as AWS evaluates them for the
  services the kit uses, with an administrator principal for the CLI and tests.
- `limits`: DynamoDB's partition throughput and transaction conflicts, SQS's retention,
  visibility, delay, size and character rules.
- `control`: the emulator's own endpoint (`/_kit/...`): counters of what was denied,
  throttled, conflicted and retried, and the limits in force.
"""

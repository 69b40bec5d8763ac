"""What `tools/emulator.py` adds to moto, one module per concern.

The fixes of moto itself (`tools/emulator.py` numbers them):
- `cloudformation`: stack outputs after a change set, Secrets Manager secrets (1, 2).
- `server`: DynamoDB one request at a time, backends per host, quiet logs (3, 9).
- `dynamodb_tables`: cheap transactions, partition queries, direct answers (4, 7, 10).
- `sqs_queues`: queue counts once per request, locked deletes, receipt handles (5, 6, 8).

The stricter world on top of them:
- `iam`: identity policies enforced on every request, as AWS evaluates them for the
  services the kit uses, with an administrator principal for the CLI and tests.
- `limits`: DynamoDB's partition throughput and transaction conflicts, SQS's retention,
  visibility, delay, size and character rules.
- `control`: the emulator's own endpoint (`/_kit/...`): counters of what was denied,
  throttled, conflicted and retried, and the limits in force.
"""

"""What `tools/emulator.py` adds to moto, one module per concern.

The fixes of moto itself (`tools/emulator.py` numbers them):
- `cloudformation`: stack outputs after a change set, Secrets Manager secrets (1, 2).
- `server`: DynamoDB one request at a time, backends per host, quiet logs (3, 9).
- `dynamodb_tables`: cheap transactions, partition queries, direct answers (4, 7, 10).
- `sqs_queues`: queue counts once per request, locked deletes, receipt handles (5, 6, 8).
- `stack_operations`: CloudFormation's creates, updates, rollbacks and deletions (11),
  with `stack_resources` (each resource's events, status and failure), `faults` (failures
  armed on request) and `resource_handlers` (what a resource's create or delete refuses).
- `sns_subscriptions`: e-mail subscriptions pending until confirmed (12).
- `condition_changes`: a parameter that reaches a resource through a condition updates it
  (13, with the table update in `resource_handlers`).

The stricter world on top of them:
- `iam`: identity policies enforced on every request, as AWS evaluates them for the
  services the kit uses, with an administrator principal for the CLI and tests.
- `limits`: DynamoDB's partition throughput and transaction conflicts, SQS's retention,
  visibility, delay, size and character rules.
- `control`: the emulator's own endpoint (`/_kit/...`): counters of what was denied,
  throttled, conflicted and retried, the limits in force, armed CloudFormation faults and
  the confirmation of pending e-mail subscriptions.
"""

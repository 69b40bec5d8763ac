"""The local AWS emulator: moto server with what the kit's deploy needs of CloudFormation.

Run with the project's .venv Python and moto_server's own arguments:

    .venv/bin/python tools/emulator.py -H 127.0.0.1 -p 5000

moto 5.2.5 (pinned in tools/requirements.txt) gets wrong or leaves out what `microprocess
deploy` relies on: a stack's outputs, resource types the core stack holds, CloudFormation's
rollbacks and failed deletions, and more below. Each fix runs moto's own code at the point
moto forgets to, or wraps it where moto goes wrong:

1. A stack made or updated through a change set keeps the outputs, parameters, tags and
   description it had before (none, for a new stack): ExecuteChangeSet applies the
   template's resources but never rebuilds the stack's output map. Later stacks read
   their parameters from those outputs, and the next change set compares against those
   parameters.
2. `AWS::SecretsManager::Secret` is accepted in a template but not created, so the
   signing secret would not exist and its `Ref` (the secret's ARN, a core output) would
   be missing. It is created here through moto's own Secrets Manager backend,
   `GenerateSecretString` included, and deleted with its stack.
3. DynamoDB requests are handled one at a time. moto's threaded server checks a write's
   condition and applies the write as two steps, so two concurrent `UpdateItem`s guarded
   by the same condition can both succeed (seen: about 1 round in 100 with 8 concurrent
   writers), and concurrent `TransactWriteItems` fail with "dictionary changed size
   during iteration". DynamoDB makes each item's conditional write atomic, and the
   ledger's exactly-once counting rests on that; one lock around DynamoDB gives it back
   (stronger than DynamoDB across items, which the ledger does not rely on). Other
   services stay concurrent, so SQS long polls do not hold anything up.
4. `TransactWriteItems` backs up the whole table, once per item of the transaction, with
   `copy.deepcopy` before it writes, so its cost grows with the table: a batch of ten
   children took seconds once the ledger held a few thousand, and the forwarders timed
   out. Only the items the transaction touches are backed up and restored here; the
   writes, their conditions and the cancellation reasons are moto's own.
5. An SQS queue's attributes, message counts included (a scan of every message each),
   are computed again for every message a `SendMessageBatch` or `ReceiveMessage`
   handles, and for every name a `GetQueueAttributes` asks for: quadratic in the queue's
   depth, so a split of 10,000 items slowed the whole emulator to a few requests a
   second. They are computed once per request here, without the counts for the message
   actions (send, receive, delete, visibility), whose answers carry none; and the clock
   each message's visibility is checked against is read with `time.time()` rather than
   through two datetime conversions.
6. SQS `DeleteMessage` rebuilds the queue's message list without the lock that
   `SendMessage` appends under, so a message sent during a delete was dropped (seen: 18
   of 5,000 children lost in a chaos run), and two deletes at once could bring a deleted
   message back. Deletes take the queue's lock here, and so do receives and visibility
   changes (a receive let go of the lock only while it waits for messages), so a message
   cannot be handed out while it is being deleted.
7. A `Query` on the table's own key sorts every item of the table (then every item of the
   partition) and walks the partition from its first key, so each read of a run slowed
   as the run's children grew (a page of 100 children: 23 ms at 1,000 children, 504 ms
   at 50,000). Each partition here also keeps its range keys in order, maintained on
   every write, and a query bisects to its key condition and `ExclusiveStartKey` and
   reads only the page it returns. Limit, the 1 MB page, ScanIndexForward, the filter,
   the projection and LastEvaluatedKey follow moto's loop exactly (checked against it on
   random partitions and queries); index queries and legacy `QueryFilter`s stay moto's.
8. A delete or a visibility change looks for its receipt handle in every message of the
   queue, and a receive lists every visible message to take ten: three scans of the
   queue per message handled, so a run slowed as its queue grew. Here each receipt
   handle moto gives out is remembered with its message, and a receive takes messages
   in order until it has enough; which message is found, deleted, received or moved to
   the dead-letter queue, and every error, are moto's.
9. Per request, moto's dispatcher lists its own package directory and tries the URL
   patterns of every service to find the backend, under a lock all requests share, and
   werkzeug logs an access line through a colour wrapper of stderr. The backend of a
   host is remembered here, and only server errors are logged.
10. moto writes each DynamoDB `AttributeValue` of an answer by asking it for every member
    of the shape (S, N, B, SS, ... ten of them) through a generic attribute picker, and
    deep-copies a query's page first: a page of 100 children took about 100 ms to answer.
    The plain `{type: value}` ones are written directly, byte for byte as moto writes
    them, and the page is not copied (moto's answer turns it into new dicts anyway).
11. CloudFormation has no rollback ("TODO: handle execution errors and implement
    rollback"): a change set whose resource fails stops there, its request answered with
    that service's own error (which an SDK cannot parse), and what it made stays; no event
    is recorded per resource, and every resource is listed `CREATE_COMPLETE`; a stack is
    dropped on DeleteStack even when a delete failed, and a bucket that is not empty is
    reported deleted while it stays; `ContinueUpdateRollback` and `RetainResources` do not
    exist. Here stack operations run as CloudFormation runs them, each resource's create,
    update and delete through moto's own code: per-resource events and statuses; a failed
    first create rolls back to `ROLLBACK_COMPLETE` (or `ROLLBACK_FAILED`), a failed update
    to `UPDATE_ROLLBACK_COMPLETE` with its previous template, parameters and outputs (or
    `UPDATE_ROLLBACK_FAILED`, which `ContinueUpdateRollback` takes, with
    `ResourcesToSkip`); `DeletionPolicy` (`Retain`, `RetainExceptOnCreate`) is honoured;
    a failed delete leaves the stack `DELETE_FAILED`, which `RetainResources` frees; a
    non-empty bucket, a deletion-protected table and a queue name already taken fail as in
    AWS; stacks in states that take no update refuse change sets. A failure can also be
    armed on request (`POST /_kit/faults`: the next create, update or delete of a named
    resource fails, or an object lands in a bucket just before its delete). A Python error
    in moto's own code stays an HTTP 500, as before.
12. An SNS e-mail subscription is confirmed at once, and `AWS::SNS::Subscription` is not
    created at all. Here e-mail subscriptions (API or template) stay `PendingConfirmation`
    until `POST /_kit/confirm-subscriptions` confirms them, as their recipient would.
13. An update whose only change is a parameter that reaches a resource through a condition
    (`Fn::If`) leaves the resource as it was: moto follows `Ref`s only. Here such resources
    are updated, and a table's `DeletionProtectionEnabled` is updated in place (moto has
    no update for tables), so the kit's deletion protection, armed after the first create,
    reaches the table.

Where each fix lives: 1 and 2 in `tools/moto_kit/cloudformation.py`, 3 and 9 in
`server.py`, 4, 7 and 10 in `dynamodb_tables.py`, 5, 6 and 8 in `sqs_queues.py`, 11 in
`stack_operations.py` (the operations, rollbacks and deletions), `stack_resources.py` (each
resource's events, status and failure), `faults.py` (the armed faults) and
`resource_handlers.py` (what a resource's create or delete refuses), 12 in
`sns_subscriptions.py`, 13 in `condition_changes.py` and `resource_handlers.py`; this file checks the moto version and installs them in order.

The stricter world (IAM enforced on every request, DynamoDB's partition throughput and
transaction conflicts, SQS's retention, visibility, delay, size and character rules) and
the emulator's own `/_kit/` endpoint are in `tools/moto_kit/`, one module each; their
docstrings say what each enforces and what it cannot.

It runs only on the moto it was written against (`PINNED_MOTO` below, as pinned in
tools/requirements.txt): each fix replaces or wraps moto's own code, so a new moto must
be read again before it is used. `tools/test_emulator.py` holds a regression test per
fix and per limit, each failing on plain moto and passing here.

Everything else is moto as installed; `tools/emulator_query_speed.py` times the ledger's
queries on a growing partition.
"""

import sys

import moto

# The moto every fix here was read against; tools/requirements.txt pins the same.
PINNED_MOTO = "5.2.5"

if moto.__version__ != PINNED_MOTO:
    sys.exit(
        f"tools/emulator.py: moto {moto.__version__} is installed, but the emulator's fixes "
        f"were written against moto {PINNED_MOTO}: each one replaces or wraps moto's own code "
        "(tools/emulator.py and tools/moto_kit/). Re-read moto's CloudFormation, DynamoDB, SQS "
        "and IAM code for each fix, run `.venv/bin/python -m unittest discover -s tools -p "
        "'test_*.py'`, then change PINNED_MOTO and tools/requirements.txt together "
        "(`make setup` installs the pinned one)."
    )

from moto_kit import (  # noqa: E402
    cloudformation,
    condition_changes,
    dynamodb_tables,
    iam,
    limits,
    resource_handlers,
    server,
    sns_subscriptions,
    sqs_queues,
    stack_operations,
    stack_resources,
)

# The fixes of moto itself, then the stricter world on top of them. The stack operations
# come before `cloudformation`, whose outputs fix wraps the ExecuteChangeSet they install.
stack_resources.install()
stack_operations.install()
resource_handlers.install()
condition_changes.install()
cloudformation.install()
sns_subscriptions.install()
server.install()
sqs_queues.install()
dynamodb_tables.install()


if __name__ == "__main__":
    from moto.server import main

    iam.enforce()
    iam.create_admin()
    limits.enforce_dynamodb()
    limits.enforce_sqs()
    main(sys.argv[1:])

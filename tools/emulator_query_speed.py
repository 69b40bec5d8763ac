"""How long the emulator takes to answer the ledger's queries as a run's partition grows.

Run with the project's .venv Python (it starts its own emulator on a free port):

    .venv/bin/python tools/emulator_query_speed.py 1000 50000

For each size it fills one run's partition the way the ledger does (`RUN`, four
`SHARD#nnn`, and that many `CHILD#<seq>`), then times the queries the kit sends on it:
a page of 100 children from the middle (`begins_with` with `Limit` and
`ExclusiveStartKey`), the same backwards, the run record with its shards (`sk >= RUN`),
and a `Select COUNT` of the children after the middle. It prints the median of each in
milliseconds. A query that costs what the page costs stays flat as the partition grows.
"""

import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moto_kit import iam  # noqa: E402

TABLE = "ledger"
PARTITION = "RUN#credit-scores#2026-11-01T02-00-00Z"
REPEATS = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(root):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(root / "tools" / "emulator.py"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the emulator did not start within 30 s")


def child_key(seq):
    return f"CHILD#{seq:012d}"


def fill(client, children):
    requests = [
        {"pk": {"S": PARTITION}, "sk": {"S": "RUN"}, "state": {"S": "PROCESSING"}},
        *(
            {"pk": {"S": PARTITION}, "sk": {"S": f"SHARD#{n:03d}"}, "succeeded": {"N": "0"}}
            for n in range(4)
        ),
        *(
            {
                "pk": {"S": PARTITION},
                "sk": {"S": child_key(seq)},
                "state": {"S": "SUCCEEDED"},
                "attempts": {"N": "1"},
                "finished_at": {"S": "2026-11-01T02:03:04Z"},
            }
            for seq in range(children)
        ),
    ]
    for start in range(0, len(requests), 25):
        batch = [{"PutRequest": {"Item": item}} for item in requests[start : start + 25]]
        client.batch_write_item(RequestItems={TABLE: batch})


def median_ms(call):
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def measure(client, children):
    middle = {"pk": {"S": PARTITION}, "sk": {"S": child_key(children // 2)}}
    children_query = {
        "TableName": TABLE,
        "ConsistentRead": True,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :child)",
        "ExpressionAttributeValues": {":pk": {"S": PARTITION}, ":child": {"S": "CHILD#"}},
        "ExclusiveStartKey": middle,
    }

    def page(forward):
        def call():
            answer = client.query(Limit=100, ScanIndexForward=forward, **children_query)
            assert answer["Count"] == 100 and "LastEvaluatedKey" in answer, answer["Count"]

        return call

    def run_record():
        answer = client.query(
            TableName=TABLE,
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND sk >= :run",
            ExpressionAttributeValues={":pk": {"S": PARTITION}, ":run": {"S": "RUN"}},
        )
        assert answer["Count"] == 5, answer["Count"]

    def count_after_middle():
        answer = client.query(Select="COUNT", Limit=1000, **children_query)
        assert answer["Count"] == min(1000, children - children // 2 - 1), answer["Count"]

    return {
        "page of 100 forward": median_ms(page(True)),
        "page of 100 backward": median_ms(page(False)),
        "run record (sk >= RUN)": median_ms(run_record),
        "COUNT of 1,000": median_ms(count_after_middle),
    }


def main(sizes):
    root = Path(__file__).resolve().parent.parent
    process, endpoint = start_emulator(root)
    try:
        # Speed, not throughput: the partition ceiling would throttle the loading.
        request = urllib.request.Request(
            endpoint + "/_kit/limits",
            data=json.dumps({"partition_scale": 0, "transaction_ms": 0}).encode(),
            method="POST",
        )
        urllib.request.urlopen(request).read()
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=iam.ADMIN_ACCESS_KEY_ID,
            aws_secret_access_key=iam.ADMIN_SECRET_ACCESS_KEY,
            config=Config(retries={"max_attempts": 1}),
        )
        for children in sorted(sizes):
            client.create_table(
                TableName=TABLE,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
            )
            fill(client, children)
            for name, ms in measure(client, children).items():
                print(f"{children:>7} children  {name:<24} {ms:8.2f} ms")
            client.delete_table(TableName=TABLE)
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main([int(n.replace(",", "").replace("_", "")) for n in sys.argv[1:]] or [1000, 50000])

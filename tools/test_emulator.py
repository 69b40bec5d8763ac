"""Regression tests of the kit's emulator (`tools/emulator.py`), each beside plain moto.

Run with the project's Python: `.venv/bin/python -m unittest discover -s tools -p
'test_*.py'` (`make test` does). Each test asks both servers the same thing: the kit's
emulator must answer as AWS does, and plain `moto_server` (the same pinned moto) must
still show the defect the fix is for, so a fix that moto no longer needs, or one that
stopped working, is seen at once.

Three kinds of fix cannot fail deterministically on plain moto, and are tested on the
emulator only, each saying why:
- races (two guarded writes both succeeding, a message dropped by a delete): plain moto
  loses them about once in a hundred rounds, so no bounded test fails on it every time;
- speed (fixes 4, 5, 7, 8, 9, 10): a timed test would not be deterministic; their answers
  are compared with plain moto's here, and `tools/emulator_query_speed.py` and `make
  bench` measure them;
- time (SQS retention, the 12-hour visibility window): only the emulator's clock can be
  moved forward (`sqs_clock_offset_seconds`); plain moto would need days.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tools"))

from moto_kit import iam  # noqa: E402

ACCOUNT = iam.ACCOUNT_ID
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, kit):
        self.kit = kit
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        if kit:
            command = [sys.executable, str(ROOT / "tools" / "emulator.py")]
        else:
            command = [str(VENV_BIN / "moto_server")]
        self.log = open(os.devnull, "w")
        self.process = subprocess.Popen(
            command + ["-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=self.log,
            cwd=ROOT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{command[0]} did not start on {self.port}")

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.log.close()

    def client(self, service, credentials=None, config=None):
        if credentials is None:
            credentials = {
                "aws_access_key_id": iam.ADMIN_ACCESS_KEY_ID,
                "aws_secret_access_key": iam.ADMIN_SECRET_ACCESS_KEY,
            }
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            config=config,
            **credentials,
        )

    def kit_call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.endpoint + path, data=data, method=method)
        with urllib.request.urlopen(request) as answer:
            return json.loads(answer.read())


SERVERS = {}


def setUpModule():
    SERVERS["plain"] = Server(kit=False)
    SERVERS["kit"] = Server(kit=True)


def tearDownModule():
    for server in SERVERS.values():
        server.stop()


def unique(prefix):
    return f"{prefix}-{time.time_ns()}"


def error_code(call):
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"]
    return None


def ledger_table(server):
    ddb = server.client("dynamodb")
    name = unique("ledger")
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


class Version(unittest.TestCase):
    def test_another_moto_version_is_refused_with_what_to_check(self):
        script = (
            "import sys, runpy, moto; moto.__version__ = '5.9.0'; "
            f"sys.path.insert(0, {str(ROOT / 'tools')!r}); "
            f"runpy.run_path({str(ROOT / 'tools' / 'emulator.py')!r}, run_name='__main__')"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("moto 5.9.0 is installed", done.stderr)
        self.assertIn("written against moto 5.2.5", done.stderr)
        self.assertIn("tools/requirements.txt", done.stderr)


TEMPLATE = {
    "Resources": {
        "Secret": {
            "Type": "AWS::SecretsManager::Secret",
            "Properties": {"Name": "NAME", "GenerateSecretString": {"PasswordLength": 32}},
        },
        "Queue": {"Type": "AWS::SQS::Queue"},
    },
    "Outputs": {"SecretArn": {"Value": {"Ref": "Secret"}}},
}


class CloudFormation(unittest.TestCase):
    def deploy(self, server):
        cfn = server.client("cloudformation")
        stack = unique("stack")
        template = json.loads(json.dumps(TEMPLATE).replace("NAME", stack))
        cfn.create_change_set(
            StackName=stack,
            ChangeSetName="first",
            ChangeSetType="CREATE",
            TemplateBody=json.dumps(template),
        )
        cfn.execute_change_set(StackName=stack, ChangeSetName="first")
        return cfn.describe_stacks(StackName=stack)["Stacks"][0], stack

    def test_fixes_1_and_2_a_change_set_gives_the_stack_its_outputs_and_secret(self):
        plain, _ = self.deploy(SERVERS["plain"])
        self.assertEqual(plain.get("Outputs", []), [], "plain moto rebuilds no outputs")
        kit, stack = self.deploy(SERVERS["kit"])
        outputs = {o["OutputKey"]: o["OutputValue"] for o in kit["Outputs"]}
        secret = SERVERS["kit"].client("secretsmanager").get_secret_value(SecretId=stack)
        self.assertEqual(outputs["SecretArn"], secret["ARN"])
        self.assertEqual(len(secret["SecretString"]), 32)


URL_TEMPLATE = {
    "Resources": {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
            },
        },
        "Function": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "NAME",
                "Runtime": "provided.al2023",
                "Handler": "bootstrap",
                "Code": {"ZipFile": "exit 0"},
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            },
        },
        "Url": {
            "Type": "AWS::Lambda::Url",
            "Properties": {"TargetFunctionArn": {"Ref": "Function"}, "AuthType": "NONE"},
        },
    },
    "Outputs": {"Url": {"Value": {"Fn::Sub": "${Url.FunctionUrl}report"}}},
}


class FunctionUrls(unittest.TestCase):
    def test_a_function_url_is_created_and_ends_in_a_slash_as_in_aws(self):
        server = SERVERS["kit"]
        name = unique("fn")
        cfn = server.client("cloudformation")
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(URL_TEMPLATE).replace("NAME", name))
        outputs = cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]
        config = server.client("lambda").get_function_url_config(FunctionName=name)
        self.assertTrue(config["FunctionUrl"].endswith(".on.aws/"), config["FunctionUrl"])
        self.assertEqual(config["AuthType"], "NONE")
        self.assertEqual(outputs[0]["OutputValue"], config["FunctionUrl"] + "report")
        cfn.delete_stack(StackName=name)
        with self.assertRaises(Exception):
            server.client("lambda").get_function_url_config(FunctionName=name)


POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "TABLE_ARN"}],
}
ROLE_TEMPLATE = {
    "Resources": {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": "ROLE",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [{"PolicyName": "reader", "PolicyDocument": POLICY}],
            },
        }
    }
}


class Iam(unittest.TestCase):
    def role_session(self, server, table):
        role = unique("fn")
        arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}"
        template = json.dumps(ROLE_TEMPLATE).replace("ROLE", role).replace("TABLE_ARN", arn)
        server.client("cloudformation").create_stack(StackName=role, TemplateBody=template)
        credentials = server.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName=role
        )["Credentials"]
        return role, server.client(
            "dynamodb",
            credentials={
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            },
            config=NO_RETRIES,
        )

    def test_a_role_from_a_template_is_held_to_its_policy_on_its_table(self):
        key = {"pk": {"S": "RUN#a"}, "sk": {"S": "RUN"}}
        for name in ("plain", "kit"):
            server = SERVERS[name]
            table = ledger_table(server)
            other = ledger_table(server)
            role, ddb = self.role_session(server, table)
            allowed = error_code(lambda: ddb.get_item(TableName=table, Key=key))
            write = error_code(lambda: ddb.put_item(TableName=table, Item=key))
            elsewhere = error_code(lambda: ddb.get_item(TableName=other, Key=key))
            if name == "plain":
                self.assertEqual((allowed, write, elsewhere), (None, None, None), "plain moto checks nothing")
                continue
            self.assertEqual((allowed, write, elsewhere), (None, "AccessDeniedException", "AccessDeniedException"))
            denied = server.kit_call("GET", "/_kit/stats")["denied"]
            self.assertIn(
                {
                    "principal": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{role}",
                    "action": "dynamodb:PutItem",
                    "resource": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}",
                },
                denied,
            )

    def test_a_transaction_needs_the_item_actions_and_unknown_keys_are_refused(self):
        server = SERVERS["kit"]
        table = ledger_table(server)
        _, ddb = self.role_session(server, table)
        put = {"Put": {"TableName": table, "Item": {"pk": {"S": "p"}, "sk": {"S": "s"}}}}
        try:
            ddb.transact_write_items(TransactItems=[put])
            self.fail("a role with GetItem only wrote through a transaction")
        except ClientError as error:
            self.assertEqual(error.response["Error"]["Code"], "AccessDeniedException")
            self.assertIn("dynamodb:PutItem", error.response["Error"]["Message"])
        stranger = server.client(
            "sqs",
            credentials={"aws_access_key_id": "AKIANOBODY0000000000", "aws_secret_access_key": "x"},
        )
        self.assertEqual(error_code(stranger.list_queues), "InvalidClientTokenId")


class Signatures(unittest.TestCase):
    def test_a_form_body_is_checked_as_it_arrived_not_as_moto_encodes_it_again(self):
        # Emulator only: plain moto checks no signature. The Rust SDK encodes a form body
        # its own way; here `/` is sent as is, where botocore would write `%2F`.
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        server = SERVERS["kit"]
        body = "Action=ListRoles&Version=2010-05-08&PathPrefix=/"
        request = AWSRequest(
            method="POST",
            url=server.endpoint + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        credentials = Credentials(iam.ADMIN_ACCESS_KEY_ID, iam.ADMIN_SECRET_ACCESS_KEY)
        SigV4Auth(credentials, "iam", "us-east-1").add_auth(request)
        prepared = urllib.request.Request(
            server.endpoint + "/", data=body.encode(), headers=dict(request.headers), method="POST"
        )
        with urllib.request.urlopen(prepared) as answer:
            self.assertEqual(answer.status, 200)
            self.assertIn(b"ListRolesResponse", answer.read())


class DynamoDbLimits(unittest.TestCase):
    def test_a_partition_over_its_write_ceiling_is_throttled(self):
        codes = {}
        for name in ("plain", "kit"):
            server = SERVERS[name]
            table = ledger_table(server)
            ddb = server.client("dynamodb", config=NO_RETRIES)
            seen = []
            # 3,000 write units at once on one key: three real partition-seconds.
            for i in range(200):
                item = {"pk": {"S": "RUN#hot"}, "sk": {"S": f"{i:05}"}, "pad": {"S": "x" * 15_000}}
                seen.append(error_code(lambda: ddb.put_item(TableName=table, Item=item)))
            codes[name] = {c for c in seen if c}
        self.assertEqual(codes["plain"], set())
        self.assertEqual(codes["kit"], {"ThrottlingException"})

    def test_a_write_to_an_item_held_by_a_transaction_conflicts(self):
        for name in ("plain", "kit"):
            server = SERVERS[name]
            table = ledger_table(server)
            ddb = server.client("dynamodb", config=NO_RETRIES)
            key = {"pk": {"S": "RUN#c"}, "sk": {"S": "COUNTER"}}
            if name == "kit":
                server.kit_call("POST", "/_kit/limits", {"transaction_ms": 1500})
            update = {"TableName": table, "Key": key, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
            transaction = threading.Thread(
                target=lambda: ddb.transact_write_items(TransactItems=[{"Update": update}])
            )
            transaction.start()
            time.sleep(0.5)
            plain_write = error_code(lambda: ddb.update_item(**update))
            second = error_code(lambda: ddb.transact_write_items(TransactItems=[{"Update": update}]))
            transaction.join()
            if name == "kit":
                server.kit_call("POST", "/_kit/limits", {"transaction_ms": 10})
                self.assertEqual((plain_write, second), ("TransactionConflictException", "TransactionCanceledException"))
            else:
                self.assertEqual((plain_write, second), (None, None))


class SqsLimits(unittest.TestCase):
    def queue(self, server, **attributes):
        sqs = server.client("sqs")
        url = sqs.create_queue(
            QueueName=unique("q"), Attributes={k: str(v) for k, v in attributes.items()}
        )["QueueUrl"]
        return sqs, url

    def test_characters_outside_the_sqs_set_are_refused_per_entry(self):
        for name in ("plain", "kit"):
            sqs, url = self.queue(SERVERS[name])
            single = error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="id-\uffff"))
            batch = sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": "ok", "MessageBody": "fine"}, {"Id": "bad", "MessageBody": "nul\u0000"}],
            )
            failed = [(f["Id"], f["Code"]) for f in batch.get("Failed", [])]
            if name == "plain":
                self.assertEqual((single, failed), (None, []))
            else:
                self.assertEqual((single, failed), ("InvalidMessageContents", [("bad", "InvalidMessageContents")]))
                self.assertEqual([s["Id"] for s in batch["Successful"]], ["ok"])

    def test_the_size_limit_counts_utf8_bytes_and_attributes(self):
        for name in ("plain", "kit"):
            sqs, url = self.queue(SERVERS[name])
            wide = error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="é" * 600_000))
            attributed = error_code(
                lambda: sqs.send_message(
                    QueueUrl=url,
                    MessageBody="x" * 1_048_000,
                    MessageAttributes={"pad": {"DataType": "String", "StringValue": "y" * 1_000}},
                )
            )
            expected = (None, None) if name == "plain" else ("InvalidParameterValue", "InvalidParameterValue")
            self.assertEqual((wide, attributed), expected, name)

    def test_delays_are_0_to_900_seconds(self):
        for name in ("plain", "kit"):
            sqs = SERVERS[name].client("sqs")
            queue = error_code(lambda: sqs.create_queue(QueueName=unique("q"), Attributes={"DelaySeconds": "1000"}))
            _, url = self.queue(SERVERS[name])
            negative = error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="m", DelaySeconds=-1))
            expected = (None, None) if name == "plain" else ("InvalidAttributeValue", "InvalidParameterValue")
            self.assertEqual((queue, negative), expected, name)

    def test_a_message_past_its_retention_is_deleted_without_a_dead_letter(self):
        # Emulator only: plain moto's clock cannot be moved forward.
        server = SERVERS["kit"]
        sqs, dlq = self.queue(server)
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        _, url = self.queue(
            server,
            MessageRetentionPeriod=60,
            RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}),
        )
        sqs.send_message(QueueUrl=url, MessageBody="old")
        before = server.kit_call("GET", "/_kit/stats")["expired"]
        server.kit_call("POST", "/_kit/limits", {"sqs_clock_offset_seconds": 61})
        try:
            received = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
            depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            dead = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", [])
        finally:
            server.kit_call("POST", "/_kit/limits", {"sqs_clock_offset_seconds": 0})
        self.assertEqual(received, [])
        self.assertEqual((depth["ApproximateNumberOfMessages"], depth["ApproximateNumberOfMessagesNotVisible"]), ("0", "0"))
        self.assertEqual(dead, [])
        self.assertEqual(server.kit_call("GET", "/_kit/stats")["expired"], before + 1)

    def test_visibility_extends_to_12_hours_from_the_receive_not_the_send(self):
        # Emulator only: the message must wait an hour on the queue before its receive.
        server = SERVERS["kit"]
        sqs, url = self.queue(server)
        sqs.send_message(QueueUrl=url, MessageBody="m")
        server.kit_call("POST", "/_kit/limits", {"sqs_clock_offset_seconds": 3600})
        try:
            (message,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
            handle = message["ReceiptHandle"]
            full = error_code(lambda: sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=43_200))
            server.kit_call("POST", "/_kit/limits", {"sqs_clock_offset_seconds": 3600 + 60})
            past = error_code(lambda: sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=43_200))
        finally:
            server.kit_call("POST", "/_kit/limits", {"sqs_clock_offset_seconds": 0})
        self.assertEqual((full, past), (None, "InvalidParameterValue"))


class SameAnswers(unittest.TestCase):
    """The speed fixes answer as plain moto does: queries by partition (fix 7), answers
    written directly (10), receipt handles (8), queue counts once per request (5), and a
    cancelled transaction restored from the items it touched (4)."""

    def test_queries_and_receives_answer_as_moto_does(self):
        answers = {}
        for name in ("plain", "kit"):
            server = SERVERS[name]
            table = ledger_table(server)
            ddb = server.client("dynamodb")
            for i in range(30):
                ddb.put_item(
                    TableName=table,
                    Item={"pk": {"S": "RUN#x"}, "sk": {"S": f"CHILD#{i:04}"}, "n": {"N": str(i)}, "l": {"L": [{"S": "a"}, {"M": {"b": {"BOOL": True}}}]}},
                )
            pages = []
            start = None
            while True:
                kwargs = {"ExclusiveStartKey": start} if start else {}
                page = ddb.query(
                    TableName=table,
                    KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
                    ExpressionAttributeValues={":p": {"S": "RUN#x"}, ":c": {"S": "CHILD#"}},
                    Limit=7,
                    ScanIndexForward=False,
                    **kwargs,
                )
                pages.append((page["Items"], page.get("LastEvaluatedKey")))
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
            sqs = server.client("sqs")
            url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
            for i in range(5):
                sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
            for m in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            again = error_code(lambda: sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"], VisibilityTimeout=5))
            for i in range(3):
                sqs.send_message(QueueUrl=url, MessageBody=f"n{i}")
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
            counts = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            # A transaction cancelled by one failed condition writes none of its items.
            update = {
                "TableName": table,
                "Key": {"pk": {"S": "RUN#x"}, "sk": {"S": "CHILD#0000"}},
                "UpdateExpression": "SET n = :n",
                "ConditionExpression": "attribute_not_exists(pk)",
                "ExpressionAttributeValues": {":n": {"N": "99"}},
            }
            put = {"TableName": table, "Item": {"pk": {"S": "RUN#x"}, "sk": {"S": "NEW"}}}
            cancelled = error_code(lambda: ddb.transact_write_items(TransactItems=[{"Put": put}, {"Update": update}]))
            left = ddb.get_item(TableName=table, Key={"pk": {"S": "RUN#x"}, "sk": {"S": "NEW"}}).get("Item")
            answers[name] = (pages, sorted(m["Body"] for m in got), again, counts, cancelled, left)
        self.assertEqual(answers["plain"], answers["kit"])


class Races(unittest.TestCase):
    """Fixes 3 and 6 on the emulator only (see the module's docstring)."""

    def test_concurrent_guarded_updates_of_one_item_succeed_once(self):
        server = SERVERS["kit"]
        table = ledger_table(server)
        ddb = server.client("dynamodb", config=NO_RETRIES)
        for round_ in range(20):
            key = {"pk": {"S": f"RUN#{round_}"}, "sk": {"S": "RUN"}}
            ddb.put_item(TableName=table, Item={**key, "state": {"S": "PROCESSING"}})
            wins = []

            def claim():
                code = error_code(
                    lambda: ddb.update_item(
                        TableName=table,
                        Key=key,
                        UpdateExpression="SET #s = :r",
                        ConditionExpression="#s = :p",
                        ExpressionAttributeNames={"#s": "state"},
                        ExpressionAttributeValues={":r": {"S": "REDUCING"}, ":p": {"S": "PROCESSING"}},
                    )
                )
                wins.append(code is None)

            threads = [threading.Thread(target=claim) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(sum(wins), 1, f"round {round_}")

    def test_messages_sent_during_deletes_are_kept(self):
        server = SERVERS["kit"]
        sqs = server.client("sqs")
        url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
        for i in range(100):
            sqs.send_message(QueueUrl=url, MessageBody=f"old{i}")
        received = []
        while len(received) < 100:
            received += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        sender = threading.Thread(target=lambda: [sqs.send_message(QueueUrl=url, MessageBody=f"new{i}") for i in range(100)])
        sender.start()
        for m in received:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        sender.join()
        depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        self.assertEqual(depth["Attributes"]["ApproximateNumberOfMessages"], "100")


if __name__ == "__main__":
    unittest.main()

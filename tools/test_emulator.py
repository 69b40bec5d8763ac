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
  moved forward (`sqs_clock_offset_seconds`); plain moto would need days;
- failures armed through `/_kit/faults` (fix 11): plain moto has no such endpoint, so its
  side of each CloudFormation test fails a resource for real (a table name already taken)
  and the injected cases are asked of the emulator only.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
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


def table_resource(name, protected=False, **attributes):
    """An `AWS::DynamoDB::Table` named `name`, with resource attributes (`DependsOn`...)."""
    return {
        "Type": "AWS::DynamoDB::Table",
        **attributes,
        "Properties": {
            "TableName": name,
            "DeletionProtectionEnabled": protected,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    }


def taken_table(server):
    """A table made outside any stack: a template naming it fails to create it, with
    DynamoDB's `ResourceInUseException`, on plain moto as on the emulator."""
    name = unique("taken")
    server.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def named(template, stack, **more):
    """`template` with NAME (and each key of `more`) replaced."""
    text = json.dumps(template).replace("NAME", stack)
    for key, value in more.items():
        text = text.replace(key, value)
    return json.loads(text)


def run_change_set(server, stack, template, kind="CREATE", parameters=None):
    """Creates and executes a change set; the error of either call, if any (plain moto
    answers a resource's failure with that service's own error body, which botocore cannot
    even parse)."""
    cfn = server.client("cloudformation", config=NO_RETRIES)
    name = unique("cs")
    try:
        cfn.create_change_set(
            StackName=stack,
            ChangeSetName=name,
            ChangeSetType=kind,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
        )
        cfn.execute_change_set(StackName=stack, ChangeSetName=name)
    except Exception as error:  # ClientError, or botocore's ResponseParserError
        return error
    return None


def stack_of(server, stack):
    return server.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]


def gone(server, stack):
    """DescribeStacks by name says the stack does not exist."""
    try:
        stack_of(server, stack)
    except ClientError as error:
        return "does not exist" in error.response["Error"]["Message"]
    return False


def stack_id(server, stack):
    """The id of a stack, a deleted one's too (by name only a live stack is found)."""
    for summary in server.client("cloudformation").list_stacks()["StackSummaries"]:
        if summary["StackName"] == stack:
            return summary["StackId"]
    raise AssertionError(f"no stack {stack}")


def stack_events(server, stack):
    """Every event of the stack, oldest first (DescribeStackEvents answers newest first)."""
    return list(reversed(server.client("cloudformation").describe_stack_events(StackName=stack)["StackEvents"]))


def stack_statuses(server, stack):
    return [e["ResourceStatus"] for e in stack_events(server, stack) if e["ResourceType"] == "AWS::CloudFormation::Stack"]


def resource_events(server, stack):
    """(logical id, status, reason) of each resource event, oldest first."""
    return [
        (e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason"))
        for e in stack_events(server, stack)
        if e["ResourceType"] != "AWS::CloudFormation::Stack"
    ]


def resource_statuses(server, stack):
    summaries = server.client("cloudformation").list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: (r["ResourceStatus"], r.get("ResourceStatusReason")) for r in summaries}


def queue_exists(server, name):
    return error_code(lambda: server.client("sqs").get_queue_url(QueueName=name)) is None


def kit_answer(server, method, path, data):
    """Status and JSON body of a `/_kit/` call whose body is given as bytes."""
    request = urllib.request.Request(server.endpoint + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


FAULT = 'Resource handler returned message: "failed on request (emulator fault)"'


class StackEvents(unittest.TestCase):
    """Fix 11: each resource's events and status, as CloudFormation reports them."""

    def test_fix_11_each_resource_has_its_events_and_status_and_a_deleted_stack_is_gone(self):
        template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}, "Table": table_resource("NAME", DependsOn="Queue")}}
        for name in ("plain", "kit"):
            server = SERVERS[name]
            stack = unique("events")
            self.assertIsNone(run_change_set(server, stack, named(template, stack)))
            created = resource_events(server, stack)
            listed = resource_statuses(server, stack)
            server.client("cloudformation").delete_stack(StackName=stack)
            if name == "plain":
                self.assertEqual(created, [], "plain moto records stack events only")
                continue
            self.assertEqual(
                [(l, s) for l, s, _ in created],
                [
                    ("Queue", "CREATE_IN_PROGRESS"),
                    ("Queue", "CREATE_COMPLETE"),
                    ("Table", "CREATE_IN_PROGRESS"),
                    ("Table", "CREATE_COMPLETE"),
                ],
            )
            self.assertEqual(listed, {"Queue": ("CREATE_COMPLETE", None), "Table": ("CREATE_COMPLETE", None)})
            self.assertTrue(gone(server, stack), "a deleted stack is not found by its name")
            newest = server.client("cloudformation").describe_stack_events(StackName=stack_id(server, stack))["StackEvents"]
            self.assertEqual(
                [(e["LogicalResourceId"], e["ResourceStatus"]) for e in newest[:5]],
                [
                    (stack, "DELETE_COMPLETE"),
                    ("Queue", "DELETE_COMPLETE"),
                    ("Queue", "DELETE_IN_PROGRESS"),
                    ("Table", "DELETE_COMPLETE"),
                    ("Table", "DELETE_IN_PROGRESS"),
                ],
                "newest first, the table deleted before the queue it depends on",
            )
            self.assertEqual((newest[1]["ResourceType"], newest[3]["PhysicalResourceId"]), ("AWS::SQS::Queue", stack))


CREATE_ROLLBACK = {
    "Resources": {
        "Kept": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain", "Properties": {"QueueName": "NAME-kept"}},
        "Fresh": {
            "Type": "AWS::SQS::Queue",
            "DeletionPolicy": "RetainExceptOnCreate",
            "Properties": {"QueueName": "NAME-fresh"},
        },
        "Clash": table_resource("TAKEN", DependsOn=["Kept", "Fresh"]),
        "Never": {"Type": "AWS::SQS::Queue", "DependsOn": "Clash", "Properties": {"QueueName": "NAME-never"}},
    },
    "Outputs": {"Fresh": {"Value": {"Ref": "Fresh"}}},
}


class CreateRollback(unittest.TestCase):
    """Fix 11: a first create that fails rolls back, and a rollback that fails holds the
    stack until it is deleted."""

    def test_fix_11_a_failed_create_deletes_what_it_made_but_retain(self):
        for name in ("plain", "kit"):
            server = SERVERS[name]
            stack = unique("create")
            template = named(CREATE_ROLLBACK, stack, TAKEN=taken_table(server))
            failed = run_change_set(server, stack, template)
            made = (queue_exists(server, f"{stack}-fresh"), queue_exists(server, f"{stack}-kept"))
            if name == "plain":
                self.assertIsNotNone(failed, "plain moto fails the request itself")
                self.assertEqual(made, (True, True), "plain moto leaves what it made")
                self.assertEqual(stack_of(server, stack)["StackStatus"], "REVIEW_IN_PROGRESS")
                continue
            self.assertIsNone(failed, "the failure is the stack's, not ExecuteChangeSet's")
            self.assertEqual(made, (False, True), "RetainExceptOnCreate is deleted, Retain kept")
            self.assertFalse(queue_exists(server, f"{stack}-never"))
            info = stack_of(server, stack)
            self.assertEqual(info["StackStatus"], "ROLLBACK_COMPLETE")
            self.assertNotIn("Outputs", info)
            self.assertEqual(
                stack_statuses(server, stack),
                ["REVIEW_IN_PROGRESS", "CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"],
            )
            rollback = next(e for e in stack_events(server, stack) if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS")
            self.assertEqual(
                rollback["ResourceStatusReason"],
                "The following resource(s) failed to create: [Clash]. Rollback requested by user.",
            )
            happened = resource_events(server, stack)
            logical, status, reason = happened[5]
            self.assertEqual((logical, status), ("Clash", "CREATE_FAILED"))
            self.assertTrue(reason.startswith('Resource handler returned message: "Table already exists'), reason)
            self.assertIn("ResourceInUseException", reason)
            self.assertEqual(
                [(l, s) for l, s, _ in happened[6:]],
                [
                    ("Clash", "DELETE_COMPLETE"),
                    ("Fresh", "DELETE_IN_PROGRESS"),
                    ("Fresh", "DELETE_COMPLETE"),
                    ("Kept", "DELETE_SKIPPED"),
                ],
            )
            self.assertNotIn("Never", {l for l, _, _ in happened}, "what was never made is not touched")
            self.assertEqual(
                {l: s for l, (s, _) in resource_statuses(server, stack).items()},
                {"Kept": "DELETE_SKIPPED", "Fresh": "DELETE_COMPLETE", "Clash": "DELETE_COMPLETE"},
            )
            # It takes no update, and its name no second create, until it is deleted.
            update = run_change_set(server, stack, template, kind="UPDATE")
            self.assertIn("is in ROLLBACK_COMPLETE state and can not be updated.", str(update))
            self.assertIn("already exists and cannot be created again", str(run_change_set(server, stack, template)))
            server.client("cloudformation").delete_stack(StackName=stack)
            self.assertTrue(gone(server, stack))
            self.assertTrue(queue_exists(server, f"{stack}-kept"), "a kept resource outlives its stack")

    def test_fix_11_a_protected_table_fails_the_rollback_and_retain_resources_frees_the_stack(self):
        template = {"Resources": {"Guarded": table_resource("NAME-guarded", protected=True), "Clash": table_resource("TAKEN", DependsOn="Guarded")}}
        for name in ("plain", "kit"):
            server = SERVERS[name]
            cfn = server.client("cloudformation", config=NO_RETRIES)
            tables = server.client("dynamodb").list_tables
            stack = unique("held")
            failed = run_change_set(server, stack, named(template, stack, TAKEN=taken_table(server)))
            if name == "plain":
                self.assertIsNotNone(failed)
                self.assertRaises(Exception, lambda: cfn.delete_stack(StackName=stack))
                self.assertTrue(gone(server, stack), "plain moto drops a stack whose deletion failed")
                self.assertIn(f"{stack}-guarded", tables()["TableNames"])
                continue
            self.assertIsNone(failed)
            info = stack_of(server, stack)
            self.assertEqual(
                (info["StackStatus"], info["StackStatusReason"]),
                ("ROLLBACK_FAILED", "The following resource(s) failed to delete: [Guarded]. "),
            )
            status, reason = resource_statuses(server, stack)["Guarded"]
            self.assertEqual(status, "DELETE_FAILED")
            self.assertTrue(reason.startswith('Resource handler returned message: "1 validation error detected'), reason)
            self.assertIn("DeletionProtectionEnabled is set to True", reason)
            # RetainResources is only for a stack whose deletion failed.
            self.assertEqual(error_code(lambda: cfn.delete_stack(StackName=stack, RetainResources=["Guarded"])), "ValidationError")
            cfn.delete_stack(StackName=stack)
            self.assertEqual(stack_of(server, stack)["StackStatus"], "DELETE_FAILED")
            self.assertEqual(resource_statuses(server, stack)["Guarded"][0], "DELETE_FAILED")
            cfn.delete_stack(StackName=stack, RetainResources=["Guarded"])
            self.assertTrue(gone(server, stack))
            self.assertEqual(resource_statuses(server, stack_id(server, stack))["Guarded"][0], "DELETE_SKIPPED")
            self.assertIn(f"{stack}-guarded", tables()["TableNames"], "the retained table stays")

    def test_fix_11_injected_faults_fail_a_create_and_the_delete_of_its_rollback(self):
        # Emulator only: plain moto has no /_kit/ endpoint.
        server = SERVERS["kit"]
        stack = unique("faulted")
        template = {
            "Resources": {
                "First": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{stack}-first"}},
                "Second": {"Type": "AWS::SQS::Queue", "DependsOn": "First"},
            }
        }
        server.kit_call("POST", "/_kit/faults", {"stack": stack, "resource": "Second", "on": "create"})
        armed = server.kit_call("POST", "/_kit/faults", {"stack": stack, "resource": "First", "on": "delete", "times": 1})
        self.assertEqual(armed["armed"], {"stack": stack, "resource": "First", "on": "delete", "times": 1})
        self.assertEqual(len([f for f in armed["faults"] if f["stack"] == stack]), 2)
        self.assertIsNone(run_change_set(server, stack, template))
        self.assertEqual(stack_of(server, stack)["StackStatus"], "ROLLBACK_FAILED")
        self.assertEqual(resource_statuses(server, stack), {"First": ("DELETE_FAILED", FAULT), "Second": ("DELETE_COMPLETE", None)})
        self.assertIn(("Second", "CREATE_FAILED", FAULT), resource_events(server, stack))
        self.assertNotIn(stack, [f["stack"] for f in server.kit_call("GET", "/_kit/faults")["faults"]], "both used up")
        self.assertTrue(queue_exists(server, f"{stack}-first"))
        # The stack's deletion deletes what its rollback could not.
        server.client("cloudformation").delete_stack(StackName=stack)
        self.assertTrue(gone(server, stack))
        self.assertFalse(queue_exists(server, f"{stack}-first"))


def update_template(timeout, added=None):
    resources = {
        "Main": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "NAME-main", "VisibilityTimeout": timeout}},
        "Side": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "NAME-side", "VisibilityTimeout": timeout}},
    }
    return {
        "Parameters": {"Version": {"Type": "String"}},
        "Resources": {**resources, **(added or {})},
        "Outputs": {"Version": {"Value": {"Ref": "Version"}}, "Main": {"Value": {"Fn::GetAtt": ["Main", "QueueName"]}}},
    }


def visibility(server, queue):
    sqs = server.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]["VisibilityTimeout"]


def outputs_of(info):
    return {o["OutputKey"]: o["OutputValue"] for o in info.get("Outputs", [])}


class UpdateRollback(unittest.TestCase):
    """Fix 11: a failed update rolls back to the previous template, parameters and
    outputs, and a rollback that fails is continued."""

    def test_fix_11_a_failed_update_rolls_back_and_deletes_what_it_added(self):
        for name in ("plain", "kit"):
            server = SERVERS[name]
            stack = unique("update")
            self.assertIsNone(run_change_set(server, stack, named(update_template(30), stack), parameters={"Version": "v1"}))
            added = {
                "Added": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "RetainExceptOnCreate", "Properties": {"QueueName": "NAME-added"}},
                "Clash": table_resource("TAKEN", DependsOn="Added"),
            }
            second = named(update_template(60, added), stack, TAKEN=taken_table(server))
            failed = run_change_set(server, stack, second, kind="UPDATE", parameters={"Version": "v2"})
            if name == "plain":
                self.assertIsNotNone(failed)
                self.assertTrue(queue_exists(server, f"{stack}-added"), "plain moto leaves what the failed update added")
                continue
            self.assertIsNone(failed)
            self.assertFalse(queue_exists(server, f"{stack}-added"), "what the update made is deleted, RetainExceptOnCreate too")
            info = stack_of(server, stack)
            self.assertEqual(info["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
            self.assertEqual(outputs_of(info), {"Version": "v1", "Main": f"{stack}-main"})
            self.assertEqual(info["Parameters"], [{"ParameterKey": "Version", "ParameterValue": "v1"}])
            self.assertNotIn("Clash", json.dumps(server.client("cloudformation").get_template(StackName=stack)["TemplateBody"]))
            self.assertEqual(
                stack_statuses(server, stack)[-4:],
                [
                    "UPDATE_IN_PROGRESS",
                    "UPDATE_ROLLBACK_IN_PROGRESS",
                    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                    "UPDATE_ROLLBACK_COMPLETE",
                ],
            )
            self.assertIn(("Added", "DELETE_COMPLETE", None), resource_events(server, stack))
            self.assertEqual(set(resource_statuses(server, stack)), {"Main", "Side"})
            self.assertEqual(visibility(server, f"{stack}-main"), "30")
            # It takes updates again.
            self.assertIsNone(run_change_set(server, stack, named(update_template(90), stack), kind="UPDATE", parameters={"Version": "v3"}))
            self.assertEqual(stack_of(server, stack)["StackStatus"], "UPDATE_COMPLETE")
            self.assertEqual(visibility(server, f"{stack}-main"), "90")

    def test_fix_11_an_update_rollback_that_fails_is_continued_then_skips_what_cannot_be_restored(self):
        plain = SERVERS["plain"].client("cloudformation", config=NO_RETRIES)
        self.assertRaises(Exception, lambda: plain.continue_update_rollback(StackName=unique("any")))
        server = SERVERS["kit"]
        cfn = server.client("cloudformation", config=NO_RETRIES)
        stack = unique("stuck")
        self.assertIsNone(run_change_set(server, stack, named(update_template(30), stack), parameters={"Version": "v1"}))
        self.assertEqual(error_code(lambda: cfn.continue_update_rollback(StackName=stack)), "ValidationError")
        # Main's update goes through; Side's fails, and so does updating Side back.
        server.kit_call("POST", "/_kit/faults", {"stack": stack, "resource": "Side", "on": "update", "times": 5})
        self.assertIsNone(run_change_set(server, stack, named(update_template(60), stack), kind="UPDATE", parameters={"Version": "v2"}))
        info = stack_of(server, stack)
        self.assertEqual(
            (info["StackStatus"], info["StackStatusReason"]),
            ("UPDATE_ROLLBACK_FAILED", "The following resource(s) failed to update: [Side]. "),
        )
        self.assertEqual(visibility(server, f"{stack}-main"), "30", "Main was updated back, through moto")
        self.assertEqual(resource_statuses(server, stack)["Side"], ("UPDATE_FAILED", FAULT))
        self.assertEqual(
            [(l, s) for l, s, _ in resource_events(server, stack)][-8:],
            [
                ("Main", "UPDATE_IN_PROGRESS"),
                ("Main", "UPDATE_COMPLETE"),
                ("Side", "UPDATE_IN_PROGRESS"),
                ("Side", "UPDATE_FAILED"),
                ("Main", "UPDATE_IN_PROGRESS"),
                ("Main", "UPDATE_COMPLETE"),
                ("Side", "UPDATE_IN_PROGRESS"),
                ("Side", "UPDATE_FAILED"),
            ],
        )
        refused = run_change_set(server, stack, named(update_template(90), stack), kind="UPDATE", parameters={"Version": "v3"})
        self.assertIn("UPDATE_ROLLBACK_FAILED state and can not be updated.", str(refused))
        # Continued while the fault is armed, it fails again; only what failed can be skipped.
        cfn.continue_update_rollback(StackName=stack)
        self.assertEqual(stack_of(server, stack)["StackStatus"], "UPDATE_ROLLBACK_FAILED")
        self.assertEqual(resource_events(server, stack)[-1][:2], ("Side", "UPDATE_FAILED"))
        self.assertEqual(error_code(lambda: cfn.continue_update_rollback(StackName=stack, ResourcesToSkip=["Main"])), "ValidationError")
        cfn.continue_update_rollback(StackName=stack, ResourcesToSkip=["Side"])
        info = stack_of(server, stack)
        self.assertEqual(info["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
        self.assertEqual(outputs_of(info)["Version"], "v1")
        self.assertEqual(resource_statuses(server, stack)["Side"], ("UPDATE_COMPLETE", None))
        self.assertEqual(resource_events(server, stack)[-1][:2], ("Side", "UPDATE_COMPLETE"))
        left = [f for f in server.kit_call("GET", "/_kit/faults")["faults"] if f["stack"] == stack]
        self.assertEqual(left, [{"stack": stack, "resource": "Side", "on": "update", "times": 2}], "a skipped resource is not asked")
        server.kit_call("POST", "/_kit/faults/clear")
        self.assertEqual(server.kit_call("GET", "/_kit/faults"), {"faults": []})


class TableUpdates(unittest.TestCase):
    def test_fix_13_a_parameter_through_a_condition_arms_a_tables_protection(self):
        template = {
            "Parameters": {"DeletionProtection": {"Type": "String", "Default": "false"}},
            "Conditions": {"DeletionProtected": {"Fn::Equals": [{"Ref": "DeletionProtection"}, "true"]}},
            "Resources": {"T": table_resource("NAME-table")},
        }
        template["Resources"]["T"]["Properties"]["DeletionProtectionEnabled"] = {
            "Fn::If": ["DeletionProtected", True, False]
        }
        for name in ("plain", "kit"):
            server = SERVERS[name]
            stack = unique("cond")
            t = named(template, stack)
            self.assertIsNone(run_change_set(server, stack, t, parameters={"DeletionProtection": "false"}))
            self.assertIsNone(run_change_set(server, stack, t, kind="UPDATE", parameters={"DeletionProtection": "true"}))
            described = server.client("dynamodb").describe_table(TableName=f"{stack}-table")["Table"]
            self.assertEqual(described["DeletionProtectionEnabled"], name == "kit")

    def test_fix_13_an_update_turns_a_tables_deletion_protection_on(self):
        for name in ("plain", "kit"):
            server = SERVERS[name]
            stack = unique("armed")
            table = f"{stack}-table"
            self.assertIsNone(run_change_set(server, stack, {"Resources": {"T": table_resource(table)}}))
            armed = {"Resources": {"T": table_resource(table, protected=True)}}
            self.assertIsNone(run_change_set(server, stack, armed, kind="UPDATE"))
            described = server.client("dynamodb").describe_table(TableName=table)["Table"]
            self.assertEqual(
                described["DeletionProtectionEnabled"],
                name == "kit",
                "plain moto never applies a table's update" if name == "plain" else "armed in place",
            )


class StackDeletion(unittest.TestCase):
    """Fix 11: a bucket that is not empty fails its stack's deletion."""

    def test_fix_11_a_bucket_left_with_an_object_fails_the_deletion_as_a_late_log_does(self):
        template = {"Resources": {"Logs": {"Type": "AWS::S3::Bucket"}}, "Outputs": {"Bucket": {"Value": {"Ref": "Logs"}}}}
        for name in ("plain", "kit"):
            server = SERVERS[name]
            cfn, s3 = server.client("cloudformation"), server.client("s3")
            stack = unique("logs")
            self.assertIsNone(run_change_set(server, stack, template))
            bucket = outputs_of(stack_of(server, stack)).get("Bucket") or next(
                r["PhysicalResourceId"] for r in cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
            )
            s3.put_object(Bucket=bucket, Key="left.txt", Body=b"x")
            cfn.delete_stack(StackName=stack)
            exists = error_code(lambda: s3.head_bucket(Bucket=bucket)) is None
            if name == "plain":
                self.assertTrue(gone(server, stack), "plain moto says the stack is deleted")
                self.assertTrue(exists, "while its bucket stays")
                continue
            self.assertTrue(exists)
            info = stack_of(server, stack)
            self.assertEqual(
                (info["StackStatus"], info["StackStatusReason"]),
                ("DELETE_FAILED", "The following resource(s) failed to delete: [Logs]. "),
            )
            status, reason = resource_statuses(server, stack)["Logs"]
            self.assertEqual(status, "DELETE_FAILED")
            self.assertEqual(
                reason,
                'Resource handler returned message: "The bucket you tried to delete is not empty '
                '(Service: S3, Status Code: 409, Error Code: BucketNotEmpty)" (HandlerErrorCode: GeneralServiceException)',
            )
            # Emptied, the bucket gets an access log just before its delete.
            s3.delete_object(Bucket=bucket, Key="left.txt")
            server.kit_call("POST", "/_kit/faults", {"stack": stack, "resource": "Logs", "on": "delete", "late_object": "alb/AWSLogs/late.log"})
            cfn.delete_stack(StackName=stack)
            self.assertEqual(stack_of(server, stack)["StackStatus"], "DELETE_FAILED")
            self.assertEqual([o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]], ["alb/AWSLogs/late.log"])
            s3.delete_object(Bucket=bucket, Key="alb/AWSLogs/late.log")
            cfn.delete_stack(StackName=stack)
            self.assertTrue(gone(server, stack))
            self.assertEqual(error_code(lambda: s3.head_bucket(Bucket=bucket)), "404")

    def test_fix_11_a_versioned_bucket_with_only_a_delete_marker_left_is_not_empty(self):
        # Emulator only: plain moto's stack deletion never fails on a bucket (above).
        server = SERVERS["kit"]
        s3 = server.client("s3")
        stack = unique("versions")
        self.assertIsNone(run_change_set(server, stack, {"Resources": {"Logs": {"Type": "AWS::S3::Bucket"}}}))
        bucket = server.client("cloudformation").list_stack_resources(StackName=stack)["StackResourceSummaries"][0]["PhysicalResourceId"]
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        version = s3.put_object(Bucket=bucket, Key="a", Body=b"x")["VersionId"]
        s3.delete_object(Bucket=bucket, Key="a")
        s3.delete_object(Bucket=bucket, Key="a", VersionId=version)  # its delete marker stays
        self.assertEqual(s3.list_objects_v2(Bucket=bucket)["KeyCount"], 0)
        self.assertEqual(len(s3.list_object_versions(Bucket=bucket)["DeleteMarkers"]), 1)
        server.client("cloudformation").delete_stack(StackName=stack)
        self.assertEqual(stack_of(server, stack)["StackStatus"], "DELETE_FAILED")


class ChangeSets(unittest.TestCase):
    """Fix 11: change sets are refused where CloudFormation refuses them."""

    def test_fix_11_a_name_in_use_takes_no_second_create_and_a_change_set_runs_once(self):
        template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
        for name in ("plain", "kit"):
            server = SERVERS[name]
            cfn = server.client("cloudformation", config=NO_RETRIES)
            stack = unique("once")
            first, second = unique("first"), unique("second")
            cfn.create_change_set(StackName=stack, ChangeSetName=first, ChangeSetType="CREATE", TemplateBody=json.dumps(template))
            cfn.execute_change_set(StackName=stack, ChangeSetName=first)
            again = error_code(lambda: cfn.execute_change_set(StackName=stack, ChangeSetName=first))
            second = error_code(
                lambda: cfn.create_change_set(StackName=stack, ChangeSetName=second, ChangeSetType="CREATE", TemplateBody=json.dumps(template))
            )
            expected = (None, None) if name == "plain" else ("InvalidChangeSetStatus", "ValidationError")
            self.assertEqual((again, second), expected, name)


class KitFaults(unittest.TestCase):
    """The emulator's own `/_kit/faults` endpoint (plain moto has none)."""

    def test_faults_are_listed_cleared_and_a_bad_body_is_refused(self):
        server = SERVERS["kit"]
        self.assertEqual(kit_answer(server, "POST", "/_kit/faults", b"{not json")[0], 400)
        unknown = {"stack": "s", "resource": "r", "on": "explode"}
        status, body = kit_answer(server, "POST", "/_kit/faults", json.dumps(unknown).encode())
        self.assertEqual((status, "`on`" in body["error"]), (400, True), body)
        late_create = {"stack": "s", "resource": "r", "on": "create", "late_object": "k"}
        status, body = kit_answer(server, "POST", "/_kit/faults", json.dumps(late_create).encode())
        self.assertEqual(status, 400, body)
        fault = {"stack": unique("s"), "resource": "r", "on": "update", "times": 2}
        self.assertIn(fault, server.kit_call("POST", "/_kit/faults", fault)["faults"])
        self.assertIn(fault, server.kit_call("GET", "/_kit/faults")["faults"])
        self.assertEqual(server.kit_call("POST", "/_kit/faults/clear"), {"faults": []})
        self.assertEqual(server.kit_call("GET", "/_kit/faults"), {"faults": []})


class EmailSubscriptions(unittest.TestCase):
    """Fix 12: an e-mail subscription waits for its confirmation."""

    def test_fix_12_an_email_subscription_is_pending_until_confirmed(self):
        for name in ("plain", "kit"):
            server = SERVERS[name]
            sns = server.client("sns")
            topic = sns.create_topic(Name=unique("alarms"))["TopicArn"]
            answered = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.com")["SubscriptionArn"]
            arn = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.com", ReturnSubscriptionArn=True)["SubscriptionArn"]
            listed = [s["SubscriptionArn"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]]
            pending = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["PendingConfirmation"]
            if name == "plain":
                self.assertEqual((answered, listed, pending), (arn, [arn], "false"), "plain moto confirms at once")
                continue
            self.assertEqual((answered, listed, pending), ("pending confirmation", ["PendingConfirmation"], "true"))
            self.assertIn("PendingConfirmation", [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]])
            self.assertEqual(server.kit_call("POST", "/_kit/confirm-subscriptions", {"topic_arn": topic}), {"confirmed": [arn]})
            self.assertEqual([s["SubscriptionArn"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]], [arn])
            self.assertEqual(sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["PendingConfirmation"], "false")

    def test_fix_12_a_template_subscription_is_made_pending_and_removed_with_its_stack(self):
        template = {
            "Resources": {
                "Topic": {"Type": "AWS::SNS::Topic"},
                "Mail": {
                    "Type": "AWS::SNS::Subscription",
                    "Properties": {"TopicArn": {"Ref": "Topic"}, "Protocol": "email", "Endpoint": "ops@example.com"},
                },
            },
            "Outputs": {"Topic": {"Value": {"Ref": "Topic"}}, "Mail": {"Value": {"Ref": "Mail"}}},
        }
        for name in ("plain", "kit"):
            server = SERVERS[name]
            sns = server.client("sns")
            stack = unique("mail")
            self.assertIsNone(run_change_set(server, stack, template))
            summaries = server.client("cloudformation").list_stack_resources(StackName=stack)["StackResourceSummaries"]
            topic = next(r["PhysicalResourceId"] for r in summaries if r["ResourceType"] == "AWS::SNS::Topic")
            listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
            if name == "plain":
                self.assertEqual(listed, [], "plain moto skips AWS::SNS::Subscription")
                continue
            self.assertEqual([s["SubscriptionArn"] for s in listed], ["PendingConfirmation"])
            arn = outputs_of(stack_of(server, stack))["Mail"]
            self.assertEqual(sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["Endpoint"], "ops@example.com")
            server.client("cloudformation").delete_stack(StackName=stack)
            self.assertEqual(error_code(lambda: sns.get_subscription_attributes(SubscriptionArn=arn)), "NotFound")


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

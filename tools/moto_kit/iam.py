"""IAM identity policies enforced on every request, as AWS evaluates them.

moto 5.2.5 has IAM authorization (off until `INITIAL_NO_AUTH_ACTION_COUNT` requests have
been served; it is set to 0 here), but as installed it cannot hold the kit's roles to
their policies:

1. Roles made by CloudFormation keep their `Policies` as dicts, which the check reads as
   documents (HTTP 500 on every request of the role), and their `ManagedPolicyArns` are
   dropped. Both are stored as `CreateRole` + `PutRolePolicy` + `AttachRolePolicy` would.
2. The trust check of `AssumeRole` crashes (HTTP 500) on a `Service` principal, which
   every Lambda role has. The launcher's administrator may assume any role (it stands in
   for the Lambda service, which is what a Lambda role trusts); anyone else gets moto's
   check, and a principal it cannot read is not trusted.
3. Every action is checked against `*`, but for SQS, S3 and `sts:AssumeRole`: a policy
   scoped to a table or secret ARN, as the kit's are, would deny everything. Here
   DynamoDB, Secrets Manager and Lambda requests name their resource ARN, as AWS does.
4. Actions are operation names (`dynamodb:TransactWriteItems`, `sqs:SendMessageBatch`),
   where AWS checks the item actions of a transaction (`dynamodb:UpdateItem`, ...
   `ConditionCheckItem`) and the single-message actions of SQS batches.
5. A request with no body and no query (Lambda `GetFunction`, `ListFunctions`) is signed
   over the request headers, so its signature never matches; a form-encoded request (the
   query protocol: CloudFormation, IAM, STS) is signed over its parsed form encoded again,
   which matches the SDK's own encoding only by chance (the Rust SDK's `CreateChangeSet`
   never did). Both are checked over the bytes that arrived.
6. A denial is an XML page even to JSON-protocol clients, which cannot read its code.
   It is answered as AWS answers (`AccessDeniedException`, naming the principal, the
   action and the resource) and recorded, so the local runner can name the role.

What moto's evaluation still does not check (so neither does the emulator): resource
policies (bucket, queue, key, secret and function policies), KMS key policies and the
KMS permissions that encrypted queues, tables and buckets need of the caller, condition
keys other than `sts:ExternalId`, `NotResource`, permission boundaries, session policies
and service control policies.
"""

import json
import threading
from urllib.parse import unquote

ACCOUNT_ID = "123456789012"
ADMIN_USER = "kit-local-admin"
# The local environment's administrator; the CLI and the tests sign with these.
ADMIN_ACCESS_KEY_ID = "AKIAKITLOCALADMIN000"
ADMIN_SECRET_ACCESS_KEY = "kit-local-admin-secret"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/{ADMIN_USER}"

# Denials recorded since the start (or the last reset), newest last.
_denials = []
_denials_lock = threading.Lock()
_MAX_DENIALS = 1000


def denials():
    with _denials_lock:
        return list(_denials)


def forget_denials():
    with _denials_lock:
        _denials.clear()


def enforce():
    """Turns authorization on and installs the fixes above."""
    from moto import settings

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    _roles_from_cloudformation()
    _trust_check()
    _aws_actions_and_resources()
    _signature_of_empty_requests()
    _json_denials()


def create_admin():
    """The administrator user, with the fixed access key above and `*` on `*`."""
    from moto.iam.models import iam_backends

    iam = iam_backends[ACCOUNT_ID]["aws"]
    if ADMIN_ACCESS_KEY_ID in iam.access_keys:
        return
    iam.create_user(region_name="us-east-1", user_name=ADMIN_USER)
    iam.put_user_policy(
        ADMIN_USER,
        "administrator",
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(ADMIN_USER)
    # moto finds an account by the key id, and a user's key by its id.
    iam.access_keys.pop(key.access_key_id, None)
    key.access_key_id = ADMIN_ACCESS_KEY_ID
    key.secret_access_key = ADMIN_SECRET_ACCESS_KEY
    iam.access_keys[ADMIN_ACCESS_KEY_ID] = key


def _roles_from_cloudformation():
    from moto.iam.models import Role, iam_backends
    from moto.utilities.utils import get_partition

    create = Role.create_from_cloudformation_json.__func__

    def create_role(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        role = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        for name, document in list(role.policies.items()):
            if not isinstance(document, str):
                role.policies[name] = json.dumps(document)
        backend = iam_backends[account_id][get_partition(region_name)]
        for arn in cloudformation_json.get("Properties", {}).get("ManagedPolicyArns", []):
            if isinstance(arn, str):
                try:
                    backend.attach_role_policy(arn, role.name)
                except Exception:  # an AWS managed policy moto does not load
                    pass
        return role

    Role.create_from_cloudformation_json = classmethod(create_role)


def _trust_check():
    from moto.iam import access_control

    check = access_control.IAMRequestBase._check_role_trust_relationship

    def trusted(self, role_arn):
        if self._access_key.arn == ADMIN_ARN:
            return True
        try:
            return check(self, role_arn)
        except (TypeError, AttributeError):
            return False

    access_control.IAMRequestBase._check_role_trust_relationship = trusted


# The item actions AWS checks for each operation of a transaction.
_TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
# SQS batch operations are authorized as their single-message actions.
_SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_LAMBDA_ACTIONS = {
    "Invoke": "InvokeFunction",
    "InvokeAsync": "InvokeFunction",
    "InvokeWithResponseStream": "InvokeFunction",
}


def _aws_actions_and_resources():
    """A service's `_determine_resource` may return (action, resource) pairs, all of
    which must be allowed; a denial names the pair that failed."""
    from moto.awslambda.responses import LambdaResponse
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam import access_control
    from moto.secretsmanager.models import secretsmanager_backends
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.sqs.responses import SQSResponse

    check = access_control.IAMRequestBase.check_action_permitted

    def check_pairs(self, resource):
        if isinstance(resource, list):
            for action, arn in resource or [(self._action, "*")]:
                self._action = action
                self._kit_resource = arn
                check(self, arn)
            return
        self._kit_resource = resource
        check(self, resource)

    access_control.IAMRequestBase.check_action_permitted = check_pairs

    def table_arn(response, name, index=None):
        arn = name if name.startswith("arn:") else (
            f"arn:{response.partition}:dynamodb:{response.region}:"
            f"{response.current_account}:table/{name}"
        )
        return arn + (f"/index/{index}" if index else "")

    def dynamodb_resource(self):
        action = self._get_action()
        params = getattr(self, "body", None)
        if not isinstance(params, dict):
            try:
                params = json.loads(self.body or "{}")
            except (TypeError, ValueError):
                params = {}
        if action in ("TransactWriteItems", "TransactGetItems"):
            return [
                (f"dynamodb:{_TRANSACTION_ACTIONS.get(op, op)}", table_arn(self, body.get("TableName", "")))
                for item in params.get("TransactItems", [])
                for op, body in item.items()
            ]
        if action in ("BatchWriteItem", "BatchGetItem"):
            return [(f"dynamodb:{action}", table_arn(self, t)) for t in params.get("RequestItems", {})]
        if params.get("TableName"):
            return [(f"dynamodb:{action}", table_arn(self, params["TableName"], params.get("IndexName")))]
        return [(f"dynamodb:{action}", "*")]

    DynamoHandler._determine_resource = dynamodb_resource

    queue_resource = SQSResponse._determine_resource

    def sqs_resource(self):
        action = self._get_action()
        if action == "GetQueueUrl":
            owner = self._get_param("QueueOwnerAWSAccountId") or self.current_account
            name = self._get_param("QueueName") or ""
            return [(f"sqs:{action}", f"arn:{self.partition}:sqs:{self.region}:{owner}:{name}")]
        arn = queue_resource(self)
        return [(f"sqs:{_SQS_BATCH_ACTIONS.get(action, action)}", arn)]

    SQSResponse._determine_resource = sqs_resource

    def lambda_resource(self):
        action = self._get_action()
        kit_action = f"lambda:{_LAMBDA_ACTIONS.get(action, action)}"
        if "/functions/" not in self.path:
            return [(kit_action, "*")]
        name = unquote(self.path.split("/functions/", 1)[1].split("/")[0])
        arn = name if name.startswith("arn:") else (
            f"arn:{self.partition}:lambda:{self.region}:{self.current_account}:function:{name}"
        )
        return [(kit_action, arn)]

    LambdaResponse._determine_resource = lambda_resource

    def secret_resource(self):
        action = f"secretsmanager:{self._get_action()}"
        secret_id = self._get_param("SecretId")
        if not secret_id:
            return [(action, "*")]
        secret = secretsmanager_backends[self.current_account][self.region].secrets.get(secret_id)
        return [(action, secret.arn if secret is not None else secret_id)]

    SecretsManagerResponse._determine_resource = secret_resource


# The body of the request being handled, as it arrived (the emulator's request wrapper
# keeps it for form-encoded requests, whose body werkzeug parses away).
_arrived = threading.local()


def keep_arrived_body(body):
    _arrived.body = body


def _signature_of_empty_requests():
    from moto.iam import access_control

    create = access_control.IAMRequestBase._create_aws_request

    def create_request(self):
        request = create(self)
        form = "x-www-form-urlencoded" in (self._headers.get("Content-Type") or "")
        arrived = getattr(_arrived, "body", None)
        if form and arrived is not None:
            request.data = arrived
        elif not self._body and not form:
            request.data = b""
        return request

    access_control.IAMRequestBase._create_aws_request = create_request


def _json_denials():
    from moto.core.exceptions import JsonRESTError
    from moto.iam import access_control

    def answers_json(request):
        content_type = request._headers.get("Content-Type") or ""
        return (
            "X-Amz-Target" in request._headers
            or "json" in content_type
            or request._action.startswith("lambda:")
        )

    def record(request):
        principal = request._access_key.arn
        action = request._action
        resource = getattr(request, "_kit_resource", "*")
        with _denials_lock:
            _denials.append({"principal": principal, "action": action, "resource": resource})
            del _denials[:-_MAX_DENIALS]
        return principal, action, resource

    def raise_access_denied(self):
        principal, action, resource = record(self)
        message = (
            f"User: {principal} is not authorized to perform: {action} on resource: "
            f"{resource} because no identity-based policy allows the {action} action"
        )
        if answers_json(self):
            error = JsonRESTError("AccessDeniedException", message)
            error.code = 400
            raise error
        from moto.iam.access_control import AccessDeniedError

        error = AccessDeniedError(user_arn=principal, action=action)
        error.description = error.description.replace(
            f"perform: {action}", f"perform: {action} on resource: {resource}"
        )
        raise error

    access_control.IAMRequest._raise_access_denied = raise_access_denied

    def as_json(raise_error):
        def raiser(self, *args):
            try:
                raise_error(self, *args)
            except Exception as error:
                if not answers_json(self) or not hasattr(error, "message"):
                    raise
                json_error = JsonRESTError(error.error_type, error.message)
                json_error.code = error.code
                raise json_error from None

        return raiser

    request = access_control.IAMRequest
    request._raise_invalid_access_key = as_json(request._raise_invalid_access_key)
    request._raise_signature_does_not_match = as_json(request._raise_signature_does_not_match)

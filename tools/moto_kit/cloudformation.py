"""moto's CloudFormation as `microprocess deploy` needs it (fixes 1 and 2 of
`tools/emulator.py`): stack outputs, parameters, tags and description rebuilt after a change
set, `AWS::SecretsManager::Secret` created through moto's own Secrets Manager, and
`AWS::Lambda::Url` (which moto's CloudFormation skips) created through moto's Lambda."""

import json

from moto.cloudformation import models as cloudformation
from moto.core.common_models import CloudFormationModel
from moto.secretsmanager.models import secretsmanager_backends


def _rebuilding_outputs(execute_change_set):
    def execute(self, change_set_name, stack_name=None):
        # `stack_operations`' ExecuteChangeSet answers with the change set it ran.
        change_set = execute_change_set(self, change_set_name, stack_name)
        _rebuild(self, change_set)

    return execute


def _rebuild(self, change_set):
    stack = self.stacks[change_set.stack_id]
    if stack.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        # Rolled back (`stack_operations`): the stack keeps what the rollback restored.
        return
    stack._parse_template()
    stack.description = stack.template_dict.get("Description")
    stack.parameters = change_set.parameters
    if change_set.tags:
        stack.tags = change_set.tags
    stack.output_map = stack._create_output_map()


class Secret(CloudFormationModel):
    """`AWS::SecretsManager::Secret`; `Ref` gives its ARN, as in AWS."""

    # moto files models by the service named in their module.
    __module__ = "moto.secretsmanager.models"

    def __init__(self, arn, account_id, region_name):
        self.arn = arn
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self):
        return self.arn

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @staticmethod
    def cloudformation_type():
        return "AWS::SecretsManager::Secret"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name):
        return self.arn

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        props = cloudformation_json.get("Properties", {})
        backend = secretsmanager_backends[account_id][region_name]
        value = props.get("SecretString")
        generate = props.get("GenerateSecretString")
        if value is None and generate is not None:
            password = backend.get_random_password(
                password_length=int(generate.get("PasswordLength", 32)),
                exclude_characters=generate.get("ExcludeCharacters", ""),
                exclude_numbers=bool(generate.get("ExcludeNumbers", False)),
                exclude_punctuation=bool(generate.get("ExcludePunctuation", False)),
                exclude_uppercase=bool(generate.get("ExcludeUppercase", False)),
                exclude_lowercase=bool(generate.get("ExcludeLowercase", False)),
                include_space=bool(generate.get("IncludeSpace", False)),
                require_each_included_type=bool(
                    generate.get("RequireEachIncludedType", True)
                ),
            )
            value = json.loads(password)["RandomPassword"]
        created = backend.create_secret(
            name=props.get("Name") or resource_name,
            secret_string=value,
            secret_binary=None,
            description=props.get("Description"),
            tags=props.get("Tags"),
            kms_key_id=props.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        arn = (json.loads(created) if isinstance(created, str) else created)["ARN"]
        return cls(arn, account_id, region_name)

    def delete(self, account_id, region_name):
        secretsmanager_backends[account_id][region_name].delete_secret(
            self.arn, recovery_window_in_days=None, force_delete_without_recovery=True
        )


class FunctionUrl(CloudFormationModel):
    """`AWS::Lambda::Url` through moto's Lambda `CreateFunctionUrlConfig`; `FunctionUrl`
    ends in `/`, as in AWS (moto's own URL has none), and `Ref` is the function's ARN."""

    __module__ = "moto.awslambda.models"

    def __init__(self, function_arn, url, account_id, region_name):
        self.function_arn = function_arn
        self.url = url
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self):
        return self.function_arn

    @staticmethod
    def cloudformation_name_type():
        return ""

    @staticmethod
    def cloudformation_type():
        return "AWS::Lambda::Url"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in ("FunctionArn", "FunctionUrl")

    def get_cfn_attribute(self, attribute_name):
        return self.url if attribute_name == "FunctionUrl" else self.function_arn

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        from moto.awslambda.models import lambda_backends

        props = cloudformation_json.get("Properties", {})
        target = props["TargetFunctionArn"]
        config = {"AuthType": props.get("AuthType"), "InvokeMode": props.get("InvokeMode")}
        if props.get("Cors"):
            config["Cors"] = props["Cors"]
        created = lambda_backends[account_id][region_name].create_function_url_config(
            target, config
        )
        if not created.url.endswith("/"):
            created.url += "/"
        return cls(created.function.function_arn, created.url, account_id, region_name)

    def delete(self, account_id, region_name):
        from moto.awslambda.models import lambda_backends

        from moto.awslambda.exceptions import UnknownFunctionException

        try:
            lambda_backends[account_id][region_name].delete_function_url_config(
                self.function_arn
            )
        except UnknownFunctionException:
            pass  # the stack deleted the function first, and its URL with it


def install():
    """After `stack_operations.install`: wraps the ExecuteChangeSet it installs."""
    backend = cloudformation.CloudFormationBackend
    backend.execute_change_set = _rebuilding_outputs(backend.execute_change_set)

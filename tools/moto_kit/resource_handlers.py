"""What CloudFormation's resource handlers refuse and moto's CloudFormation lets through
(part of fix 11 of `tools/emulator.py`):

- An `AWS::S3::Bucket` that still holds anything (an object, an object version or a
  delete marker) is not deleted: `BucketNotEmpty`, as S3's `DeleteBucket` answers. moto's
  `DeleteBucket` refuses it too, but its CloudFormation delete ignored the refusal and
  reported the bucket deleted while it stayed. A bucket already gone counts as deleted,
  as in AWS.
- An `AWS::SQS::Queue` whose name is taken is not created: moto's `CreateQueue` hands back
  the existing queue when the attributes match (as SQS does), so the stack adopted a
  queue it had not made, and a rollback or a stack deletion deleted it.

- An `AWS::DynamoDB::Table` whose `DeletionProtectionEnabled` changes in an update is
  updated in place, as DynamoDB's `UpdateTable` does: moto has no update for tables, so a
  stack could never turn the protection on (the kit arms it after the first create). Other
  property changes stay as moto leaves them (unapplied). Its delete needs nothing here:
  moto's CloudFormation deletes a table through `Table.delete`, which goes through the
  backend's `DeleteTable` and its refusal (`ValidationException`).
"""


def install():
    _buckets_must_be_empty()
    _queue_names_must_be_free()
    _table_protection_updates_in_place()


def _buckets_must_be_empty():
    from moto.s3.exceptions import BucketNotEmpty, MissingBucket
    from moto.s3.models import FakeBucket, s3_backends
    from moto.utilities.utils import get_partition

    delete = FakeBucket.delete_from_cloudformation_json.__func__

    def delete_bucket(cls, resource_name, cloudformation_json, account_id, region_name):
        backend = s3_backends[account_id][get_partition(region_name)]
        try:
            bucket = backend.get_bucket(resource_name)
        except MissingBucket:
            return
        if bucket.keys:
            raise BucketNotEmpty(resource_name)
        delete(cls, resource_name, cloudformation_json, account_id, region_name)

    FakeBucket.delete_from_cloudformation_json = classmethod(delete_bucket)


def _queue_names_must_be_free():
    from moto.sqs.exceptions import QueueAlreadyExists
    from moto.sqs.models import Queue, sqs_backends

    create = Queue.create_from_cloudformation_json.__func__

    def create_queue(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        name = str(resource_name)[0:80]  # as moto's own create truncates it
        if name in sqs_backends[account_id][region_name].queues:
            raise QueueAlreadyExists(
                f"Resource of type 'AWS::SQS::Queue' with identifier '{name}' already exists."
            )
        return create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Queue.create_from_cloudformation_json = classmethod(create_queue)


def _table_protection_updates_in_place():
    from moto.dynamodb.models.table import Table

    def update_table(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        wanted = cloudformation_json.get("Properties", {}).get("DeletionProtectionEnabled", False)
        # A parameter or condition may hand over the string CloudFormation would convert.
        original_resource.deletion_protection_enabled = wanted in (True, "true", "True")
        return original_resource

    Table.update_from_cloudformation_json = classmethod(update_table)

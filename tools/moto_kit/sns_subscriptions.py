"""SNS e-mail subscriptions wait for their confirmation, as in AWS (fix 12 of
`tools/emulator.py`).

moto 5.2.5 confirms every subscription at once (`PendingConfirmation` false, the real ARN
listed), and its CloudFormation has no `AWS::SNS::Subscription` at all (the resource was
skipped). Here:

- A subscription with protocol `email` or `email-json` is pending until it is confirmed:
  `ListSubscriptions` and `ListSubscriptionsByTopic` show its `SubscriptionArn` as
  `PendingConfirmation`, `GetSubscriptionAttributes` says `PendingConfirmation: "true"`
  (and `ConfirmationWasAuthenticated: "false"`), and `Subscribe` answers
  `pending confirmation` unless `ReturnSubscriptionArn` is true.
- `AWS::SNS::Subscription` is created through moto's `Subscribe` (so an e-mail one is
  pending too), with `FilterPolicy`, `FilterPolicyScope`, `RawMessageDelivery` and
  `RedrivePolicy`; `Ref` is its ARN, and it is unsubscribed with its stack.
- `POST /_kit/confirm-subscriptions` (`control`) confirms the pending ones, as the
  recipient's click would: the real ARN is listed and `PendingConfirmation` is false.

Not modelled: the confirmation mail and its token (`ConfirmSubscription` stays moto's,
which confirms nothing), pending subscriptions expiring after three days, and the topic's
`SubscriptionsPending` and `SubscriptionsConfirmed` counts (moto's stay 0).
"""

import json

from moto.core.common_models import CloudFormationModel

PENDING_PROTOCOLS = ("email", "email-json")


def _pending(subscription):
    return bool(subscription.attributes.get("PendingConfirmation"))


class SubscriptionResource(CloudFormationModel):
    """`AWS::SNS::Subscription`; `Ref` gives the subscription's ARN, as in AWS."""

    # moto files models by the service named in their module.
    __module__ = "moto.sns.models"

    def __init__(self, arn, account_id, region_name):
        self.arn = arn
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self):
        return self.arn

    @staticmethod
    def cloudformation_name_type():
        return ""

    @staticmethod
    def cloudformation_type():
        return "AWS::SNS::Subscription"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name):
        return self.arn

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        from moto.sns.models import sns_backends

        props = cloudformation_json.get("Properties", {})
        backend = sns_backends[account_id][region_name]
        subscription = backend.subscribe(props["TopicArn"], props["Endpoint"], props["Protocol"])
        # The scope first: moto checks a filter policy against it.
        for name in ("FilterPolicyScope", "FilterPolicy", "RawMessageDelivery", "RedrivePolicy"):
            if name in props:
                value = props[name]
                if isinstance(value, dict):
                    value = json.dumps(value)
                elif name == "RawMessageDelivery":
                    value = str(value).lower() == "true"
                backend.set_subscription_attributes(subscription.arn, name, value)
        return cls(subscription.arn, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id, region_name):
        from moto.sns.models import sns_backends

        sns_backends[account_id][region_name].unsubscribe(self.arn)


def confirm(topic_arn=None):
    """Confirms the pending subscriptions (of `topic_arn`, or all); returns their ARNs."""
    from moto.sns.models import sns_backends

    confirmed = []
    for _, regions in sns_backends.items():
        for _, backend in regions.items():
            for subscription in backend.subscriptions.values():
                if _pending(subscription) and topic_arn in (None, subscription.topic_arn):
                    subscription.attributes["PendingConfirmation"] = False
                    subscription.confirmed = True
                    confirmed.append(subscription.arn)
    return confirmed


def _listed(subscription):
    return {
        "SubscriptionArn": "PendingConfirmation" if _pending(subscription) else subscription.arn,
        "Owner": subscription.owner,
        "Protocol": subscription.protocol,
        "Endpoint": subscription.endpoint,
        "TopicArn": subscription.topic_arn,
    }


def install():
    from moto.core.responses import ActionResult
    from moto.sns.models import SNSBackend
    from moto.sns.responses import SNSResponse

    subscribe = SNSBackend.subscribe

    def subscribe_pending(self, topic_arn, endpoint, protocol):
        known = self._find_subscription(topic_arn, endpoint, protocol)
        subscription = subscribe(self, topic_arn, endpoint, protocol)
        if known is None and protocol in PENDING_PROTOCOLS:
            subscription.attributes["PendingConfirmation"] = True
            subscription.attributes["ConfirmationWasAuthenticated"] = False
        return subscription

    SNSBackend.subscribe = subscribe_pending

    subscribe_response = SNSResponse.subscribe

    def subscribe_answer(self):
        answer = subscribe_response(self)
        arn = answer.result["SubscriptionArn"]
        subscription = self.backend.subscriptions.get(arn)
        returns_arn = str(self._get_param("ReturnSubscriptionArn", "false")).lower() == "true"
        if subscription is not None and _pending(subscription) and not returns_arn:
            answer.result["SubscriptionArn"] = "pending confirmation"
        return answer

    SNSResponse.subscribe = subscribe_answer

    def list_subscriptions(self):
        subscriptions, token = self.backend.list_subscriptions(next_token=self._get_param("NextToken"))
        return ActionResult({"Subscriptions": [_listed(s) for s in subscriptions], "NextToken": token})

    def list_subscriptions_by_topic(self):
        subscriptions, token = self.backend.list_subscriptions_by_topic(
            self._get_param("TopicArn"), next_token=self._get_param("NextToken")
        )
        return ActionResult({"Subscriptions": [_listed(s) for s in subscriptions], "NextToken": token})

    SNSResponse.list_subscriptions = list_subscriptions
    SNSResponse.list_subscriptions_by_topic = list_subscriptions_by_topic

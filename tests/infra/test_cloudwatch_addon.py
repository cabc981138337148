"""Application Signals is either given its IAM or turned off in the CloudWatch add-on.

Sources:
- The add-on turns Application Signals on by default:
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/install-CloudWatch-Observability-EKS-addon.html
- An ``application_signals`` section under ``logs.metrics_collected`` or
  ``traces.traces_collected`` of the agent configuration is what enables it; a custom agent
  configuration passed to the add-on replaces the default one:
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Application_Signals.html
- Its traces go to X-Ray, which needs ``AWSXrayWriteOnlyAccess`` next to
  ``CloudWatchAgentServerPolicy``:
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Application-Signals-Enable-EKS.html
"""

from __future__ import annotations

import json
from typing import Any

from tests.stack_inventory import Inventory

ADDON = "aws:eks/addon:Addon"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def _mentions(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_mentions(v, key) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, key) for v in node)
    return False


def _cloudwatch(inv: Inventory) -> dict[str, Any]:
    (addon,) = [
        r.inputs
        for r in inv.of_type(ADDON)
        if r.inputs["addonName"] == "amazon-cloudwatch-observability"
    ]
    return addon


def test_application_signals_is_off_or_has_its_xray_permissions(long_lived: Inventory) -> None:
    settings = json.loads(_cloudwatch(long_lived).get("configurationValues") or "{}")
    agent_config = settings.get("agent", {}).get("config")
    # No agent config means the add-on's default, which has Application Signals on.
    # The docs' add-on examples spell the section `app_signals`, the agent page
    # `application_signals`; either turns it on.
    signals_on = agent_config is None or any(
        _mentions(agent_config, key) for key in ("application_signals", "app_signals")
    )
    role_arn = _cloudwatch(long_lived)["podIdentityAssociations"][0]["roleArn"]
    role = next(r for r in long_lived.of_type("aws:iam/role:Role") if r.outputs["arn"] == role_arn)
    policies = {
        r.inputs["policyArn"].rsplit("/", 1)[-1]
        for r in long_lived.of_type(ATTACHMENT)
        if r.inputs["role"] == role.id
    }
    assert "CloudWatchAgentServerPolicy" in policies
    assert not signals_on or "AWSXrayWriteOnlyAccess" in policies


def test_container_insights_and_logs_stay_on(long_lived: Inventory) -> None:
    # The alarms read Container Insights metrics (restarts, GPU limit) and the JSON access logs.
    settings = json.loads(_cloudwatch(long_lived)["configurationValues"])
    assert settings["containerLogs"] == {"enabled": True}
    kubernetes = settings["agent"]["config"]["logs"]["metrics_collected"]["kubernetes"]
    assert kubernetes["enhanced_container_insights"] is True
    assert kubernetes["accelerated_compute_metrics"] is True
    assert "traces" not in settings["agent"]["config"]

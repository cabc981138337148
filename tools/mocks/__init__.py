"""The offline model of AWS, Kubernetes, Docker and the random provider, as Pulumi mocks.

- ``engine``: ``ProgramMocks`` (the ``pulumi.runtime.Mocks`` implementation) dispatching by
  provider and type to the output tables, and ``Registration``, the one record of a run.
- ``aws``, ``aws_functions``, ``kubernetes``, ``docker``, ``random``: per-provider tables of
  computed outputs and function answers, ``{token: function(inputs, ctx) -> outputs}``.
- ``context``: what those functions receive, the id helpers and ``MockRejectedError``.
- ``simulated_account``: the stateful AWS account (sequences of up/destroy, the rules AWS
  enforces across runs).
- ``runner``: runs the program or a few components under the engine; the only module that
  touches the SDK's private runtime.
"""

from tools.mocks.context import ACCOUNT_ID, DEPLOYER_ROLE, MockRejectedError
from tools.mocks.engine import ProgramMocks, Registration
from tools.mocks.runner import RecordingMonitor

__all__ = [
    "ACCOUNT_ID",
    "DEPLOYER_ROLE",
    "MockRejectedError",
    "ProgramMocks",
    "RecordingMonitor",
    "Registration",
]

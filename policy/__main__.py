"""CrossGuard policy pack of this project, run by ``pulumi preview/up --policy-pack policy``.

Run offline against the program's mock inventory of every stack with
``.venv/bin/pytest tests/policy``; see docs/working-with-stacks.md.
"""

from guardrails import PACK_NAME, POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name=PACK_NAME, policies=POLICIES)

"""Offline admission checks the plan applies to every resource, packaged as a CrossGuard pack.

- ``pod_security``: every Pod Security Standard control (`baseline` and `restricted`), version
  aware, as a table of pure checks;
- ``resources``: the platform's rule that every container declares requests and a memory limit;
- ``pack``: both as a Pulumi CrossGuard policy pack (``policy-pack/`` serves it to
  ``pulumi preview --policy-pack``) and the in-process runner the offline plan uses.
"""

from stacks.policy.pack import POLICIES, check_manifest, check_resource
from stacks.policy.pod_security import CONTROLS, pod_security_violations
from stacks.policy.resources import resource_violations

__all__ = [
    "CONTROLS",
    "POLICIES",
    "check_manifest",
    "check_resource",
    "pod_security_violations",
    "resource_violations",
]

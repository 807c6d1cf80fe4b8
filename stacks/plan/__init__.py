"""The offline engine: evaluate a stack without the Pulumi CLI, a cloud account or a cluster.

    python -m stacks.plan --stack prod [--out build/plan/prod]

Runs the real program (``stacks.config.load`` + ``stacks.platform.build``) in-process under
Pulumi's mock runtime, with the stack's own ``Pulumi.<stack>.yaml`` (encrypted values become
placeholders), then:

- prints the resource tree (type and name, indented by parent);
- writes ``resources.json``: one object per resource (sorted by URN) with ``urn``, ``type``,
  ``name``, ``parent``, ``provider``, ``options`` (protect, retainOnDelete, ignoreChanges,
  deleteBeforeReplace, replaceOnChanges, customTimeouts, dependsOn) and ``inputs``; every secret
  value is replaced by ``"[secret]"`` and only a short digest of it is kept
  (``secretDigests``), so a change review can tell that a secret changed;
- writes ``manifests/``: every Kubernetes object as YAML, one file per object;
- validates every manifest against the OpenAPI schema of the stack's Kubernetes version
  (strict: unknown fields are errors), custom resources against the schemas in
  ``stacks/schemas/``, and every pod against the Pod Security Standard `restricted`;
- with ``--compare DIR`` (an earlier plan), reviews what `pulumi up` would change: create /
  update / replace / delete per resource by the providers' own force-new rules, data at risk and
  outages marked (``compare``, ``force_new``);
- exits 0 when all is well, 2 on bad config or arguments, 3 on invalid manifests, 4 on a risky
  change not acknowledged with ``--accept-risk``, 5 on a change the API refuses.

The tests use ``evaluate()`` to assert on whole-stack resource graphs.

What the mocks cannot know (IDs, IPs, generated passwords) is faked deterministically, so two
runs of the same config write the same bytes. Outputs that only exist after a real deployment
(e.g. the KEDA chart's rendered objects) are not rendered: the Helm release is listed as a
resource with its values.

The package, one concept per module: `stackfile` (reading Pulumi.<stack>.yaml with placeholders
for encrypted values), `engine` (mocks, recording monitor, `evaluate`), `validate` (schemas and
Pod Security), `output` (tree and files), `force_new` (the providers' replacement rules),
`compare` (the change review) and `cli`. Everything the tests and other modules use is
re-exported here.
"""

from stacks.plan.cli import main
from stacks.plan.engine import (
    OPTION_KEYS,
    SECRET,
    Plan,
    PlanMocks,
    RecordingMonitor,
    Resource,
    autoname,
    default_options,
    evaluate,
    is_kubernetes_object,
    redact,
    run_program,
    to_manifest,
)
from stacks.plan.output import resource_tree, write
from stacks.plan.stackfile import ROOT, SECRET_PLACEHOLDER_PREFIX, read_stack_config
from stacks.plan.validate import (
    CLUSTER_SCOPED_KINDS,
    SCHEMA_DIR,
    Problem,
    manifest_id,
    validate_manifests,
)

__all__ = [
    "CLUSTER_SCOPED_KINDS",
    "OPTION_KEYS",
    "ROOT",
    "SCHEMA_DIR",
    "SECRET",
    "SECRET_PLACEHOLDER_PREFIX",
    "Plan",
    "PlanMocks",
    "Problem",
    "RecordingMonitor",
    "Resource",
    "autoname",
    "default_options",
    "evaluate",
    "is_kubernetes_object",
    "main",
    "manifest_id",
    "read_stack_config",
    "redact",
    "resource_tree",
    "run_program",
    "to_manifest",
    "validate_manifests",
    "write",
]

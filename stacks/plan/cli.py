"""The command line: ``python -m stacks.plan --stack STACK [--out DIR] [--compare DIR]``
(``./run plan STACK ...``).

Evaluates the stack, prints the tree, writes the files, validates the manifests and, with
``--compare``, reviews the change from an earlier plan. Exit codes: 0 all good, 2 bad stack
config or arguments, 3 invalid manifests, 4 a change with data at risk or an outage that
``--accept-risk`` did not acknowledge, 5 a change the API refuses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stacks.config import ConfigError
from stacks.plan import compare
from stacks.plan.engine import evaluate
from stacks.plan.output import resource_tree, write
from stacks.plan.stackfile import ROOT
from stacks.plan.validate import validate_manifests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.plan",
        description="Evaluate a stack offline: print its resources, write resources.json and "
        "Kubernetes manifests, and validate them. No Pulumi CLI or cloud needed.",
    )
    parser.add_argument(
        "--stack", required=True, help="stack name: reads Pulumi.STACK.yaml (dev, prod, local, ...)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: build/plan/STACK)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the resource tree")
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=ROOT,
        help="directory holding Pulumi.yaml and the stack files (default: repo)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="DIR",
        help="an earlier plan of the same stack (its --out directory, e.g. from main): list "
        "what `pulumi up` would create, update, replace or delete, and stop (exit 4) on data at "
        "risk or an outage. DIR may be the --out directory itself: it is read before writing",
    )
    parser.add_argument(
        "--accept-risk",
        action="store_true",
        help="with --compare: go ahead (exit 0) although a change puts data at risk or causes "
        "an outage, after you reviewed it",
    )
    args = parser.parse_args(argv)
    out = args.out or ROOT / "build" / "plan" / args.stack
    if args.accept_risk and args.compare is None:
        parser.error("--accept-risk only applies to --compare DIR")

    earlier = None
    if args.compare is not None:
        try:
            earlier = compare.load_resources(args.compare)
        except compare.PlanDirError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        earlier_stack = compare.stack_of(earlier)
        if earlier_stack not in (None, args.stack):
            print(f"error: --compare {args.compare} holds a plan of stack '{earlier_stack}', "
                  f"not '{args.stack}'; compare two plans of the same stack", file=sys.stderr)
            return 2

    try:
        plan = evaluate(args.stack, project_dir=args.project_dir)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(resource_tree(plan))
    paths = write(plan, out)
    problems = validate_manifests(plan.manifests(), plan.kubernetes_version)
    count = len([r for r in plan.resources if r.type != "pulumi:pulumi:Stack"])
    print(f"\nstack {args.stack}: {count} resources, {len(paths)} Kubernetes manifests -> {out}")
    if problems:
        print(
            f"error: {len(problems)} manifest problem(s) (Kubernetes {plan.kubernetes_version}):",
            file=sys.stderr,
        )
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 3
    print(
        f"all manifests valid against Kubernetes {plan.kubernetes_version} and Pod Security "
        "'restricted'"
    )
    if earlier is None:
        return 0
    current = [resource.to_json() for resource in plan.resources]
    result = compare.review(earlier, current)
    compare.write_changes(result, out / "changes.json")
    print()
    print(compare.render(result, before=str(args.compare), after=f"stack {args.stack} now",
                         accept_risk=args.accept_risk))
    return result.exit_code(args.accept_risk)


if __name__ == "__main__":
    sys.exit(main())

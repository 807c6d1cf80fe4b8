"""The command line: ``python -m stacks.plan --stack STACK [--out DIR]`` (``./run plan STACK``).

Evaluates the stack, prints the tree, writes the files, validates the manifests and exits 0 (all
good), 2 (bad stack config) or 3 (invalid manifests).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stacks.config import ConfigError
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
    args = parser.parse_args(argv)
    out = args.out or ROOT / "build" / "plan" / args.stack

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
    return 0


if __name__ == "__main__":
    sys.exit(main())

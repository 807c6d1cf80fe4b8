"""How a component's resources inherit what the component waits for.

Pulumi does not pass a component's ``depends_on`` to the resources the component creates: the
engine records each resource's own dependencies only, and destroys and updates in that order.
A Deployment inside a component that ``depends_on`` the namespace would otherwise be deleted
concurrently with the namespace, and one that should wait for the broker would not. Every
component here builds its resources' options with ``child_options``, so "this component waits
for X" holds for each of its resources, on create, update and delete.

Owns no resource and reads no config.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi


def inherited_dependencies(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    """The component's explicit ``depends_on``, as a list."""
    if opts is None or opts.depends_on is None:
        return []
    if isinstance(opts.depends_on, pulumi.Resource):
        return [opts.depends_on]
    return list(opts.depends_on)


def child_options(
    parent: pulumi.Resource,
    opts: pulumi.ResourceOptions | None,
    *,
    depends_on: Sequence[pulumi.Resource] = (),
    **options,
) -> pulumi.ResourceOptions:
    """Options for one of ``parent``'s resources: parented to it, depending on whatever the
    component depends on plus ``depends_on``, with any other ``ResourceOptions`` given."""
    dependencies = [*inherited_dependencies(opts), *depends_on]
    return pulumi.ResourceOptions(parent=parent, depends_on=dependencies or None, **options)


__all__ = ["child_options", "inherited_dependencies"]

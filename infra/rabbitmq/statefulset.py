"""The RabbitMQ StatefulSet and what its pods need: the container (probes, draining preStop,
restricted security), volumes and the claim template, anti-affinity and zone spread, the
PodDisruptionBudget and the RBAC rules of peer discovery.

Pure builders over `RabbitMQClusterArgs` and `ObjectNames`; registers nothing.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from infra import pod_security
from infra import rabbitmq_config as config
from infra.rabbitmq.args import (
    DISTRIBUTION_PORT,
    EPMD_PORT,
    RABBITMQ_UID,
    TLS_DIR,
    ObjectNames,
    RabbitMQClusterArgs,
    object_labels,
    selector,
)
from infra.rabbitmq.files import ENV_FILE
from infra.rabbitmq.network import client_port_names


def affinity(names: ObjectNames, args: RabbitMQClusterArgs) -> k8s.core.v1.AffinityArgs:
    """Required: two replicas on one node would let one node failure take a majority."""
    node_affinity = None
    if args.zones:
        node_affinity = k8s.core.v1.NodeAffinityArgs(
            required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                node_selector_terms=[
                    k8s.core.v1.NodeSelectorTermArgs(
                        match_expressions=[
                            k8s.core.v1.NodeSelectorRequirementArgs(
                                key="topology.kubernetes.io/zone",
                                operator="In",
                                values=list(args.zones),
                            )
                        ]
                    )
                ]
            )
        )
    return k8s.core.v1.AffinityArgs(
        node_affinity=node_affinity,
        pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
            required_during_scheduling_ignored_during_execution=[
                k8s.core.v1.PodAffinityTermArgs(
                    topology_key="kubernetes.io/hostname",
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names)),
                )
            ]
        ),
    )


def topology_spread(
    names: ObjectNames, args: RabbitMQClusterArgs
) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    if not args.zones:
        return []
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            topology_key="topology.kubernetes.io/zone",
            max_skew=1,
            # DoNotSchedule + minDomains: with a zone short of nodes a pod waits rather than
            # doubling up in another zone, where one zone outage would then cost a majority.
            when_unsatisfiable="DoNotSchedule",
            min_domains=min(len(args.zones), args.replicas),
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names)),
        )
    ]


def _script_probe(script: str, **timing) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        exec_=k8s.core.v1.ExecActionArgs(command=["/bin/bash", f"/etc/rabbitmq/config/{script}"]),
        **timing,
    )


def container(names: ObjectNames, args: RabbitMQClusterArgs) -> k8s.core.v1.ContainerArgs:
    paths = config.ContainerPaths()
    limits = {"memory": args.memory}
    if args.cpu_limit:
        limits["cpu"] = args.cpu_limit
    field_ref = k8s.core.v1.ObjectFieldSelectorArgs
    env = [
        k8s.core.v1.EnvVarArgs(
            name="MY_POD_NAME",
            value_from=k8s.core.v1.EnvVarSourceArgs(
                field_ref=field_ref(field_path="metadata.name")
            ),
        ),
        k8s.core.v1.EnvVarArgs(
            name="MY_POD_NAMESPACE",
            value_from=k8s.core.v1.EnvVarSourceArgs(
                field_ref=field_ref(field_path="metadata.namespace")
            ),
        ),
        k8s.core.v1.EnvVarArgs(name="K8S_SERVICE_NAME", value=names.headless_service),
        # Stable DNS node names: a rescheduled pod keeps its identity (and its queue replicas).
        k8s.core.v1.EnvVarArgs(name="RABBITMQ_USE_LONGNAME", value="true"),
        k8s.core.v1.EnvVarArgs(
            name="RABBITMQ_NODENAME",
            value="rabbit@$(MY_POD_NAME).$(K8S_SERVICE_NAME).$(MY_POD_NAMESPACE)",
        ),
        k8s.core.v1.EnvVarArgs(
            name="K8S_HOSTNAME_SUFFIX", value=".$(K8S_SERVICE_NAME).$(MY_POD_NAMESPACE)"
        ),
        k8s.core.v1.EnvVarArgs(name="RABBITMQ_CONFIG_FILES", value=paths.confd_dir),
        k8s.core.v1.EnvVarArgs(
            name="RABBITMQ_ENABLED_PLUGINS_FILE", value=f"{paths.config_dir}/enabled_plugins"
        ),
        k8s.core.v1.EnvVarArgs(name="HOME", value=paths.data_dir),
    ]
    if args.server_tls is not None:
        # The server script and every CLI tool (probes, preStop) read TLS distribution flags
        # from this file, so they reach the node over the same mutual TLS as its peers.
        env.append(k8s.core.v1.EnvVarArgs(name="RABBITMQ_CONF_ENV_FILE",
                                          value=f"{paths.config_dir}/{ENV_FILE}"))
    ports = [
        k8s.core.v1.ContainerPortArgs(name=name, container_port=port, protocol="TCP")
        for name, port in (
            *client_port_names(args),
            ("epmd", EPMD_PORT),
            ("cluster-links", DISTRIBUTION_PORT),
        )
    ]
    mounts = [
        k8s.core.v1.VolumeMountArgs(name="data", mount_path=paths.data_dir),
        k8s.core.v1.VolumeMountArgs(name="config", mount_path=paths.config_dir, read_only=True),
        k8s.core.v1.VolumeMountArgs(
            name="server-secret", mount_path=paths.secret_dir, read_only=True
        ),
        k8s.core.v1.VolumeMountArgs(
            name="erlang-cookie", mount_path=paths.cookie_dir, read_only=True
        ),
        k8s.core.v1.VolumeMountArgs(name="confd", mount_path=paths.confd_dir),
        k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),  # noqa: S108 (emptyDir)
        k8s.core.v1.VolumeMountArgs(name="logs", mount_path="/var/log/rabbitmq"),
    ]
    if args.server_tls is not None:
        mounts.append(k8s.core.v1.VolumeMountArgs(name="tls", mount_path=TLS_DIR,
                                                  read_only=True))
    return k8s.core.v1.ContainerArgs(
        name="rabbitmq",
        image=args.image,
        command=["/bin/bash", f"{paths.config_dir}/entrypoint.sh"],
        env=env,
        ports=ports,
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": args.cpu_request, "memory": args.memory}, limits=limits
        ),
        # Startup: the node runs AND is a member of a cluster of the planned size. A node that
        # formed a cluster of its own never passes, so it never receives traffic. Generous:
        # Raft log recovery after a crash can take minutes on a large volume.
        startup_probe=_script_probe(
            "startup-check.sh", period_seconds=10, timeout_seconds=30, failure_threshold=90
        ),
        # Readiness: the AMQP listener accepts connections (cheap; runs every 10 s).
        readiness_probe=k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=client_port_names(args)[0][0]),
            period_seconds=10,
            timeout_seconds=5,
            failure_threshold=3,
        ),
        # No liveness probe on purpose: restarting a node that is slow because it recovers its
        # Raft logs makes the recovery start over; a crashed beam exits and is restarted anyway.
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                exec_=k8s.core.v1.ExecActionArgs(
                    command=["/bin/bash", f"{paths.config_dir}/pre-stop.sh"]
                )
            )
        ),
        volume_mounts=mounts,
        security_context=pod_security.container_security_context(RABBITMQ_UID),
    )


def volumes(names: ObjectNames, args: RabbitMQClusterArgs | None = None
            ) -> list[k8s.core.v1.VolumeArgs]:
    empty = k8s.core.v1.EmptyDirVolumeSourceArgs
    tls = [] if args is None or args.server_tls is None else [
        # 0440, owned by root and group rabbitmq (fsGroup): the node reads its key, nobody else.
        k8s.core.v1.VolumeArgs(name="tls", secret=k8s.core.v1.SecretVolumeSourceArgs(
            secret_name=names.tls_secret, default_mode=0o440)),
    ]
    return [*tls,
        k8s.core.v1.VolumeArgs(
            name="config",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=names.config_map, default_mode=0o444
            ),
        ),
        k8s.core.v1.VolumeArgs(
            name="server-secret",
            secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=names.server_secret, default_mode=0o440
            ),
        ),
        k8s.core.v1.VolumeArgs(
            name="erlang-cookie",
            secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=names.cookie_secret, default_mode=0o440
            ),
        ),
        k8s.core.v1.VolumeArgs(name="confd", empty_dir=empty(medium="Memory", size_limit="1Mi")),
        k8s.core.v1.VolumeArgs(name="tmp", empty_dir=empty(size_limit="64Mi")),
        k8s.core.v1.VolumeArgs(name="logs", empty_dir=empty(size_limit="64Mi")),
    ]


def volume_claim_template(args: RabbitMQClusterArgs) -> k8s.core.v1.PersistentVolumeClaimArgs:
    return k8s.core.v1.PersistentVolumeClaimArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(name="data"),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=args.storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                requests={"storage": args.storage_size}
            ),
        ),
    )


def statefulset_spec(
    names: ObjectNames, args: RabbitMQClusterArgs, config_checksum: str = "",
    certificate_checksum: object = None,
) -> k8s.apps.v1.StatefulSetSpecArgs:
    """``certificate_checksum`` (a digest of the node certificate, an Output in the stack) on
    the template rolls the nodes onto a renewed certificate, one at a time, each draining
    first (the RollingUpdate and preStop below), so no confirmed message is lost."""
    annotations = {}
    if config_checksum:
        annotations["hacelery.io/config-checksum"] = config_checksum
    if certificate_checksum is not None:
        annotations["hacelery.io/certificate-checksum"] = certificate_checksum
    return k8s.apps.v1.StatefulSetSpecArgs(
        replicas=args.replicas,
        service_name=names.headless_service,
        # Parallel: every pod starts at once (peer discovery decides who forms the cluster);
        # OrderedReady would deadlock a full restart, since pod 0 is only Ready once others
        # are back.
        pod_management_policy="Parallel",
        update_strategy=k8s.apps.v1.StatefulSetUpdateStrategyArgs(type="RollingUpdate"),
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names)),
        # Retain: deleting or scaling down the StatefulSet never deletes queue data.
        persistent_volume_claim_retention_policy=(
            k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                when_deleted="Retain", when_scaled="Retain"
            )
        ),
        volume_claim_templates=[volume_claim_template(args)],
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(
                labels=object_labels(names, args),
                # A config change rolls the pods (one at a time, each draining first).
                annotations=annotations or None,
            ),
            spec=k8s.core.v1.PodSpecArgs(
                service_account_name=names.service_account,
                # 4.1+ discovery needs no Kubernetes API: no token in the pod at all.
                automount_service_account_token=not config.uses_seed_node_discovery(args.version),
                termination_grace_period_seconds=args.termination_grace_seconds,
                security_context=pod_security.pod_security_context(RABBITMQ_UID),
                affinity=affinity(names, args),
                topology_spread_constraints=topology_spread(names, args) or None,
                containers=[container(names, args)],
                volumes=volumes(names, args),
            ),
        ),
    )


def pod_disruption_budget_spec(names: ObjectNames) -> k8s.policy.v1.PodDisruptionBudgetSpecArgs:
    # One voluntary disruption at a time: a node drain can never take a quorum majority.
    return k8s.policy.v1.PodDisruptionBudgetSpecArgs(
        max_unavailable=1,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names)),
    )


def role_rules() -> list[k8s.rbac.v1.PolicyRuleArgs]:
    # Before 4.1 the discovery plugin lists the headless Service's endpoints; nothing more.
    return [k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["endpoints"], verbs=["get"])]

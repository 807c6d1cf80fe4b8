"""The pods the kedacore/keda chart 2.17.2 renders, rebuilt offline from our values.

No Helm binary (nor the chart's tarball) is available to the tests, so this module mirrors, by
hand, the parts of the chart that decide what the Pod Security policy and the resource rule look
at, read from the chart's sources at the pinned tag (kedacore/charts, tag v2.17.2):

  * ``DEFAULTS``: the subset of ``keda/values.yaml`` those parts read (security contexts,
    resources, host network, service-account token, replica counts, restrict.secret);
  * ``helm_values``: Helm's coalescing of the chart defaults with a values file and then the
    release's values (maps merge key by key; a null deletes the default: Helm's "Deleting a
    default key"; pulumi-kubernetes merges the values files first, helm_release.go
    decodeRelease);
  * ``rendered_pods``: what ``templates/manager/deployment.yaml``,
    ``templates/metrics-server/deployment.yaml`` and ``templates/webhooks/deployment.yaml`` put
    into each pod template: ``securityContext: .Values.podSecurityContext.<component>`` (else the
    top-level value), the container's ``.Values.securityContext.<component>``, ``resources:
    .Values.resources.<component>``, ``hostNetwork`` (metrics server and webhooks),
    ``automountServiceAccountToken``, the ``certificates`` Secret volume, the container ports,
    and the KEDA_RESTRICT_SECRET_ACCESS variable.

What this does NOT verify: template branches for values the platform never sets (extra
containers, init containers, extra volumes, Prometheus ports, host aliases), and whether a
future chart version still reads the same keys -- a chart upgrade (``KedaArgs.chart_version``)
must re-read the templates, which ``test_keda_chart_pods`` pins by failing for any other version.
"""

from __future__ import annotations

import copy
from typing import Any

CHART_VERSION = "2.17.2"

_RESTRICTED_DEFAULT_CONTAINER = {
    "capabilities": {"drop": ["ALL"]},
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_LIMITS = {"limits": {"cpu": 1, "memory": "1000Mi"}, "requests": {"cpu": "100m", "memory": "100Mi"}}

DEFAULTS: dict[str, Any] = {
    "operator": {"name": "keda-operator", "replicaCount": 1},
    "metricsServer": {"replicaCount": 1, "useHostNetwork": False},
    "webhooks": {"enabled": True, "replicaCount": 1, "useHostNetwork": False,
                 "name": "keda-admission-webhooks", "port": "", "failurePolicy": "Ignore"},
    "serviceAccount": {
        component: {"automountServiceAccountToken": True}
        for component in ("operator", "metricServer", "webhooks")
    },
    "permissions": {"metricServer": {"restrict": {"secret": False}},
                    "operator": {"restrict": {"secret": False, "namesAllowList": []}}},
    "securityContext": {component: dict(_RESTRICTED_DEFAULT_CONTAINER)
                        for component in ("operator", "metricServer", "webhooks")},
    "podSecurityContext": {component: {"runAsNonRoot": True}
                           for component in ("operator", "metricServer", "webhooks")},
    "resources": {component: copy.deepcopy(_LIMITS)
                  for component in ("operator", "metricServer", "webhooks")},
    "service": {"portHttpsTarget": 6443},
    "topologySpreadConstraints": {"operator": [], "metricsServer": [], "webhooks": []},
    "podDisruptionBudget": {"operator": {}, "metricServer": {}, "webhooks": {}},
}


def coalesce(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of user values over chart defaults: maps recurse, anything else replaces,
    and a null removes the default key."""
    result = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = coalesce(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge_maps(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """pulumi-kubernetes' helm.MergeMaps (values files, then ``values``): nulls are kept, so
    Helm's coalescing sees them."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_maps(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def helm_values(values_files: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    user: dict[str, Any] = {}
    for document in values_files:
        user = merge_maps(user, document)
    return coalesce(DEFAULTS, merge_maps(user, values))


def _component_or_top(values: dict[str, Any], key: str, component: str) -> Any:
    # `{{- if .Values.<key>.<component> }} ... {{- else }} toYaml .Values.<key>`
    per_component = (values.get(key) or {}).get(component)
    return per_component if per_component else values.get(key)


def _pod(name: str, component: str, values: dict[str, Any], *, host_network: bool | None,
         ports: list[int], env: list[dict[str, str]]) -> dict[str, Any]:
    container = {
        "name": name,
        "image": f"ghcr.io/kedacore/{name}:{CHART_VERSION}",
        "securityContext": _component_or_top(values, "securityContext", component),
        "resources": _component_or_top(values, "resources", component),
        "ports": [{"containerPort": port, "protocol": "TCP"} for port in ports],
        "env": env,
        "volumeMounts": [{"name": "certificates", "mountPath": "/certs", "readOnly": True}],
    }
    token = values["serviceAccount"][component].get("automountServiceAccountToken", True)
    spec: dict[str, Any] = {
        "automountServiceAccountToken": token,
        "securityContext": _component_or_top(values, "podSecurityContext", component),
        "containers": [container],
        "volumes": [{"name": "certificates",
                     "secret": {"secretName": "kedaorg-certs", "defaultMode": 420}}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
    }
    if host_network is not None:
        spec["hostNetwork"] = host_network
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def rendered_pods(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The three pod templates, keyed by the chart's component name."""
    restrict = values["permissions"]["operator"]["restrict"].get("secret")
    operator_env = [{"name": "WATCH_NAMESPACE", "value": str(values.get("watchNamespace", ""))}]
    if restrict:
        operator_env.append({"name": "KEDA_RESTRICT_SECRET_ACCESS", "value": str(restrict).lower()})
    metrics_env = []
    if values["permissions"]["metricServer"]["restrict"].get("secret"):
        metrics_env.append({"name": "KEDA_RESTRICT_SECRET_ACCESS", "value": "true"})
    return {
        "operator": _pod("keda-operator", "operator", values, host_network=None,
                         ports=[9666], env=operator_env),
        "metricServer": _pod("keda-operator-metrics-apiserver", "metricServer", values,
                             host_network=values["metricsServer"]["useHostNetwork"],
                             ports=[values["service"]["portHttpsTarget"]], env=metrics_env),
        "webhooks": _pod("keda-admission-webhooks", "webhooks", values,
                         host_network=values["webhooks"]["useHostNetwork"],
                         ports=[int(values["webhooks"]["port"] or 9443)], env=[]),
    }


def operator_secret_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The Secret rules of the operator's ClusterRole (templates/manager/clusterrole.yaml),
    which the chart binds in every watched namespace (clusterrolebindings.yaml)."""
    restrict = values["permissions"]["operator"]["restrict"]
    if restrict.get("secret"):
        return []
    rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}]
    if restrict.get("namesAllowList"):
        rules.append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                      "resourceNames": list(restrict["namesAllowList"])})
    return rules

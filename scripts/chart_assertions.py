#!/usr/bin/env python3
"""Assertions on the rendered Sluice Helm chart (and the deploy/ and k8s/iam/
files next to it).

Renders the chart with `helm template` for the default values, each example
values file and a set of `--set` overrides, parses the output with PyYAML and
checks what the chart promises: one workload of the right kind per stage,
replica counts and autoscalers that follow values, hardened pods, a config
checksum that rolls pods, probes on the admin port, and so on.

Called by scripts/chart-test.sh, which supplies helm; prints every failure and
writes {"passed": N, "failed": M} to --summary.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

STAGES = {
    # values key: (component label, workload kind, container name)
    "collector": ("collector", "Deployment", "collector"),
    "archiver": ("stream-archiver", "StatefulSet", "stream-archiver"),
    "transcoder": ("transcoder", "Deployment", "transcoder"),
    "loader": ("warehouse-loader", "Deployment", "warehouse-loader"),
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                  "StorageClass", "CustomResourceDefinition"}
COMPONENT = "app.kubernetes.io/component"
CONFIG_PATH = "/etc/sluice/sluice.toml"


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.scope = ""

    def check(self, cond: object, what: str) -> bool:
        if cond:
            self.passed += 1
            return True
        self.failed += 1
        print(f"FAIL: [{self.scope}] {what}")
        return False


class Renderer:
    def __init__(self, helm: str, chart: Path, kube_version: str) -> None:
        self.helm = helm
        self.chart = chart
        self.kube_version = kube_version
        self.defaults = yaml.safe_load((chart / "values.yaml").read_text())

    def run(self, files=(), sets=(), release="sluice", namespace="sluice"):
        cmd = [self.helm, "template", release, str(self.chart), "--namespace", namespace,
               "--kube-version", self.kube_version]
        for f in files:
            cmd += ["-f", str(f)]
        for s in sets:
            cmd += ["--set", s]
        return subprocess.run(cmd, capture_output=True, text=True)

    def render(self, files=(), sets=(), **kw):
        p = self.run(files, sets, **kw)
        if p.returncode != 0:
            raise RuntimeError(f"helm template failed ({files} {sets}):\n{p.stderr}")
        return [d for d in yaml.safe_load_all(p.stdout) if d]

    def values(self, files=(), overrides=None):
        v = copy.deepcopy(self.defaults)
        for f in files:
            deep_merge(v, yaml.safe_load(Path(f).read_text()) or {})
        if overrides:
            deep_merge(v, overrides)
        return v


def deep_merge(dst: dict, src: dict) -> dict:
    for k, val in src.items():
        if isinstance(val, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], val)
        else:
            dst[k] = copy.deepcopy(val)
    return dst


def dig(obj, *path, default=None):
    for p in path:
        if isinstance(obj, dict) and p in obj:
            obj = obj[p]
        elif isinstance(obj, list) and isinstance(p, int) and -len(obj) <= p < len(obj):
            obj = obj[p]
        else:
            return default
    return obj


# --- views over a rendered release ---------------------------------------------

class Release:
    def __init__(self, docs):
        self.docs = docs

    def of_kind(self, kind):
        return [d for d in self.docs if d.get("kind") == kind]

    def by_component(self, kind, component):
        return [d for d in self.of_kind(kind) if dig(d, "metadata", "labels", COMPONENT) == component]

    def workloads(self):
        return [d for d in self.docs if d.get("kind") in {"Deployment", "StatefulSet", "DaemonSet"}]

    def pod_templates(self):
        """(owner, pod template) for every object that runs pods."""
        out = []
        for d in self.docs:
            if d.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
                out.append((d, dig(d, "spec", "template")))
            elif d.get("kind") == "CronJob":
                out.append((d, dig(d, "spec", "jobTemplate", "spec", "template")))
        return out

    def workload(self, stage):
        component, kind, _ = STAGES[stage]
        found = self.by_component(kind, component)
        return found[0] if len(found) == 1 else None

    def configmap(self, name=None):
        cms = [c for c in self.of_kind("ConfigMap") if "sluice.toml" in (c.get("data") or {})
               and "helm.sh/hook" not in (dig(c, "metadata", "annotations") or {})]
        return cms[0] if len(cms) == 1 else None

    def config(self):
        cm = self.configmap()
        return tomllib.loads(cm["data"]["sluice.toml"]) if cm else None

    def checksums(self):
        return {f"{d['kind']}/{d['metadata']['name']}":
                dig(t, "metadata", "annotations", "checksum/config") for d, t in self.pod_templates()}


def containers(template):
    spec = template.get("spec", {})
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def named_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


# --- checks on one rendered release ---------------------------------------------

def check_release(c: Checks, rel: Release, v: dict) -> None:
    cfg = v["config"]
    keda = v["keda"]["enabled"]

    # Labels and namespaces on everything.
    for d in rel.docs:
        labels = dig(d, "metadata", "labels") or {}
        ident = f"{d.get('kind')}/{dig(d, 'metadata', 'name')}"
        c.check(all(k in labels for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                                          "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of",
                                          "helm.sh/chart")),
                f"{ident} has the app.kubernetes.io/* and helm.sh/chart labels")
        if d.get("kind") not in CLUSTER_SCOPED:
            c.check(dig(d, "metadata", "namespace"), f"{ident} sets metadata.namespace")
    names = [(d.get("kind"), dig(d, "metadata", "name")) for d in rel.docs]
    c.check(len(names) == len(set(names)), "no two objects share kind and name")

    # One workload of the right kind per stage, nothing else long-running.
    comps = {}
    for w in rel.workloads():
        comps.setdefault(dig(w, "metadata", "labels", COMPONENT), []).append(w)
    for stage, (component, kind, _) in STAGES.items():
        ws = comps.get(component, [])
        c.check(len(ws) == 1 and ws[0]["kind"] == kind,
                f"{component} is exactly one {kind} (got {[w['kind'] for w in ws]})")
    c.check(set(comps) == {s[0] for s in STAGES.values()},
            f"no workload besides the four stages (got {sorted(map(str, comps))})")
    c.check(len({dig(w, "metadata", "name") for w in rel.workloads()}) == 4,
            "each stage's workload has its own name")

    # Selectors match their own pods, and only their own.
    for w in rel.workloads():
        comp = dig(w, "metadata", "labels", COMPONENT)
        sel = dig(w, "spec", "selector", "matchLabels") or {}
        c.check(selects(sel, dig(w, "spec", "template", "metadata", "labels") or {}),
                f"{comp} selector matches its pod labels")
        others = [o for o in rel.workloads() if o is not w]
        c.check(not any(selects(sel, dig(o, "spec", "template", "metadata", "labels") or {}) for o in others),
                f"{comp} selector matches no other stage's pods")

    # Replicas and autoscaling follow values.
    hpas = {dig(h, "spec", "scaleTargetRef", "name"): h for h in rel.of_kind("HorizontalPodAutoscaler")}
    sos = rel.of_kind("ScaledObject")
    for stage in STAGES:
        w = rel.workload(stage)
        if w is None:
            continue
        name = w["metadata"]["name"]
        s = v[stage]
        auto = dig(s, "autoscaling", "enabled", default=False)
        if stage == "transcoder" and keda:
            auto = False
        comp = STAGES[stage][0]
        c.check((name in hpas) == bool(auto),
                f"{comp}: HPA rendered iff autoscaling is enabled (enabled={auto}, keda={keda})")
        scaled = auto or (stage == "transcoder" and keda)
        if scaled:
            c.check("replicas" not in w["spec"], f"{comp}: no fixed replicas while autoscaled")
        else:
            c.check(w["spec"].get("replicas") == s["replicas"],
                    f"{comp}: replicas {w['spec'].get('replicas')} == values {s['replicas']}")
        if name in hpas:
            h = hpas[name]
            a = s["autoscaling"]
            c.check(h["apiVersion"] == "autoscaling/v2", f"{comp}: HPA is autoscaling/v2")
            c.check(dig(h, "spec", "scaleTargetRef", "kind") == w["kind"], f"{comp}: HPA targets a {w['kind']}")
            c.check(dig(h, "spec", "minReplicas") == a["minReplicas"] and dig(h, "spec", "maxReplicas") == a["maxReplicas"],
                    f"{comp}: HPA min/max follow values")
            metric = dig(h, "spec", "metrics", 0, "resource") or {}
            c.check(metric.get("name") == "cpu"
                    and dig(metric, "target", "averageUtilization") == a["targetCPUUtilizationPercentage"],
                    f"{comp}: HPA scales on CPU utilisation from values")
    c.check(set(hpas) <= {rel.workload(s)["metadata"]["name"] for s in ("collector", "transcoder") if rel.workload(s)},
            "HPAs only for collector and transcoder")
    c.check(len(sos) == (1 if keda else 0), f"ScaledObject rendered iff keda.enabled ({keda})")
    for so in sos:
        t = rel.workload("transcoder")
        c.check(so["apiVersion"] == "keda.sh/v1alpha1", "ScaledObject is keda.sh/v1alpha1")
        c.check(t and dig(so, "spec", "scaleTargetRef", "name") == t["metadata"]["name"],
                "ScaledObject targets the transcoder Deployment")
        trig = dig(so, "spec", "triggers", 0) or {}
        q = cfg["queues"]
        c.check(trig.get("type") == "aws-sqs-queue", "ScaledObject trigger is aws-sqs-queue")
        c.check(dig(trig, "metadata", "queueURL") == (q.get("transcode_url") or q.get("transcode_name")),
                "ScaledObject watches the transcode queue")
        c.check(dig(trig, "metadata", "awsRegion") == cfg["aws"]["region"], "ScaledObject uses config.aws.region")
        c.check(dig(so, "spec", "minReplicaCount") == v["keda"]["minReplicaCount"]
                and dig(so, "spec", "maxReplicaCount") == v["keda"]["maxReplicaCount"],
                "ScaledObject min/max follow values")
        for k, val in (dig(trig, "metadata") or {}).items():
            c.check(isinstance(val, str), f"ScaledObject trigger metadata {k} is a string")

    # Pods: hardened, checksummed, configured.
    conf_map = rel.configmap()
    c.check(conf_map is not None, "exactly one (non-hook) ConfigMap holds sluice.toml")
    toml_text = conf_map["data"]["sluice.toml"] if conf_map else ""
    conf = rel.config() or {}
    expected_sum = hashlib.sha256(toml_text[:-1].encode()).hexdigest() if toml_text.endswith("\n") else None
    for owner, tpl in rel.pod_templates():
        ident = f"{owner['kind']}/{owner['metadata']['name']}"
        spec = tpl["spec"]
        psc = spec.get("securityContext") or {}
        c.check(psc.get("runAsNonRoot") is True, f"{ident}: pod runAsNonRoot is true")
        c.check(isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0,
                f"{ident}: pod runAsUser is a non-zero number ({psc.get('runAsUser')})")
        c.check(dig(psc, "seccompProfile", "type") == "RuntimeDefault", f"{ident}: seccompProfile RuntimeDefault")
        c.check(spec.get("automountServiceAccountToken") is False, f"{ident}: no Kubernetes API token mounted")
        c.check(spec.get("hostNetwork") is not True and spec.get("hostPID") is not True,
                f"{ident}: no host namespaces")
        ann = dig(tpl, "metadata", "annotations") or {}
        c.check(re.fullmatch(r"[0-9a-f]{64}", str(ann.get("checksum/config", ""))),
                f"{ident}: pod template has a sha256 checksum/config annotation")
        c.check(ann.get("checksum/config") == expected_sum,
                f"{ident}: checksum/config is the sha256 of the rendered sluice.toml")
        vols = {vol["name"]: vol for vol in spec.get("volumes") or []}
        for ctr in containers(tpl):
            cid = f"{ident}/{ctr['name']}"
            sc = ctr.get("securityContext") or {}
            c.check(sc.get("privileged") is not True, f"{cid}: not privileged")
            c.check(sc.get("allowPrivilegeEscalation") is False, f"{cid}: allowPrivilegeEscalation false")
            c.check(sc.get("readOnlyRootFilesystem") is True, f"{cid}: read-only root filesystem")
            c.check("ALL" in (dig(sc, "capabilities", "drop") or []) and not dig(sc, "capabilities", "add"),
                    f"{cid}: drops ALL capabilities, adds none")
            c.check(sc.get("runAsUser", psc.get("runAsUser")) not in (0, None)
                    and sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True,
                    f"{cid}: effective user is non-root")
            mounts = {m["mountPath"]: m for m in ctr.get("volumeMounts") or []}
            tmp = mounts.get("/tmp")
            c.check(tmp and "emptyDir" in vols.get(tmp["name"], {}), f"{cid}: /tmp is an emptyDir")
            cfgm = mounts.get("/etc/sluice")
            c.check(cfgm and cfgm.get("readOnly") is True and "configMap" in vols.get(cfgm["name"], {}),
                    f"{cid}: sluice.toml mounted read-only from a ConfigMap")
            args = ctr.get("args") or []
            c.check(any(args[i:i + 2] == ["--config", CONFIG_PATH] for i in range(len(args))),
                    f"{cid}: runs with --config {CONFIG_PATH}")
            env = {e["name"]: e for e in ctr.get("env") or []}
            c.check(dig(env, "SLUICE_CONFIG", "value") == CONFIG_PATH, f"{cid}: SLUICE_CONFIG set")
            image = ctr.get("image", "")
            c.check(re.search(r":[\w][\w.-]*$", image.rsplit("/", 1)[-1]) and not image.endswith(":latest"),
                    f"{cid}: image {image!r} has a pinned tag")
            res = ctr.get("resources") or {}
            c.check(dig(res, "requests", "cpu") and dig(res, "requests", "memory") and dig(res, "limits", "memory"),
                    f"{cid}: cpu/memory requests and a memory limit")
            whurl = env.get("SLUICE_WAREHOUSE__URL")
            is_loader = owner.get("kind") == "Deployment" and dig(owner, "metadata", "labels", COMPONENT) == "warehouse-loader"
            if is_loader:
                ref = dig(whurl, "valueFrom", "secretKeyRef") or {}
                c.check(ref.get("name") == v["warehouseSecret"]["name"] and ref.get("key") == v["warehouseSecret"]["key"],
                        f"{cid}: SLUICE_WAREHOUSE__URL from Secret {v['warehouseSecret']}")
            elif owner["kind"] != "Job":
                c.check(whurl is None, f"{cid}: no warehouse URL outside the loader")
            if whurl is not None:
                c.check("value" not in whurl, f"{cid}: warehouse URL never inline")

    # Probes on the admin port of each stage.
    for stage, (component, _, cname) in STAGES.items():
        w = rel.workload(stage)
        if not w:
            continue
        ctr = next((x for x in w["spec"]["template"]["spec"]["containers"] if x["name"] == cname), None)
        c.check(ctr is not None, f"{component}: container named {cname}")
        if not ctr:
            continue
        admin = cfg[stage]["admin_port"]
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            hg = dig(ctr, probe, "httpGet") or {}
            c.check(hg.get("path") == path, f"{component}: {probe} GET {path}")
            c.check(named_port(ctr, hg.get("port")) == admin, f"{component}: {probe} on admin port {admin}")
        c.check(named_port(ctr, "admin") == admin, f"{component}: admin containerPort {admin}")
        c.check(w["spec"]["template"]["spec"].get("terminationGracePeriodSeconds") == v[stage]["terminationGracePeriodSeconds"],
                f"{component}: terminationGracePeriodSeconds from values")

    col = rel.workload("collector")
    if col:
        ctr = col["spec"]["template"]["spec"]["containers"][0]
        for pname, key in (("http", "http_port"), ("grpc", "grpc_port")):
            c.check(named_port(ctr, pname) == cfg["collector"][key], f"collector: {pname} containerPort = config.collector.{key}")

    sums = set(rel.checksums().values())
    c.check(len(sums) == 1, "every workload carries the same config checksum")

    # sluice.toml itself.
    c.check(conf.get("archiver", {}).get("replica_count") == v["archiver"]["replicas"],
            "sluice.toml archiver.replica_count == archiver.replicas")
    c.check("replica_index" not in conf.get("archiver", {}), "replica_index is per pod, not in sluice.toml")
    for section in ("aws", "stream", "object_store", "queues", "collector", "archiver", "transcoder", "loader", "warehouse"):
        c.check(section in conf, f"sluice.toml has [{section}]")
    c.check("url" not in conf.get("warehouse", {}), "sluice.toml carries no warehouse URL")
    c.check(conf.get("warehouse", {}).get("kind") in ("postgres", "redshift"), "warehouse.kind is postgres or redshift")
    c.check(conf.get("stream", {}).get("kind") == "kinesis" and conf.get("object_store", {}).get("kind") == "s3",
            "stream kind kinesis, object_store kind s3")
    for k, val in cfg["collector"].items():
        if k != "sources" and val not in ("", None):
            c.check(conf.get("collector", {}).get(k) == val, f"sluice.toml collector.{k} == values ({val!r})")
    c.check(conf.get("collector", {}).get("sources", {}) == (cfg["collector"].get("sources") or {}),
            "sluice.toml [collector.sources] == values")

    # Archiver: ordinal and headless Service.
    arc = rel.workload("archiver")
    if arc:
        spec = arc["spec"]
        ctr = spec["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in ctr.get("env") or []}
        c.check(dig(env, "SLUICE_ARCHIVER__REPLICA_INDEX", "valueFrom", "fieldRef", "fieldPath")
                == "metadata.labels['apps.kubernetes.io/pod-index']",
                "stream-archiver: SLUICE_ARCHIVER__REPLICA_INDEX from the pod-index label")
        svc = [s for s in rel.of_kind("Service") if s["metadata"]["name"] == spec.get("serviceName")]
        c.check(len(svc) == 1 and svc[0]["spec"].get("clusterIP") == "None",
                "stream-archiver: serviceName is a headless Service")
        c.check(not spec.get("volumeClaimTemplates"), "stream-archiver: stateless pods (checkpoints live in S3)")

    # Services select exactly one stage and target named ports that exist.
    svc_by_comp = {}
    for s in rel.of_kind("Service"):
        sel = dig(s, "spec", "selector") or {}
        matched = [w for w in rel.workloads() if selects(sel, dig(w, "spec", "template", "metadata", "labels") or {})]
        c.check(len(matched) == 1, f"Service/{s['metadata']['name']} selects exactly one workload")
        if len(matched) != 1:
            continue
        svc_by_comp[dig(matched[0], "metadata", "labels", COMPONENT)] = s
        ctr = matched[0]["spec"]["template"]["spec"]["containers"][0]
        for p in s["spec"].get("ports") or []:
            c.check(named_port(ctr, p.get("targetPort")) is not None,
                    f"Service/{s['metadata']['name']} port {p.get('name')} targets a container port")
        c.check(any(p.get("name") == "admin" for p in s["spec"].get("ports") or []),
                f"Service/{s['metadata']['name']} exposes the admin port")
    c.check(set(svc_by_comp) == {x[0] for x in STAGES.values()}, "every stage has a Service (metrics target)")
    cs = svc_by_comp.get("collector")
    if cs:
        ports = {p["name"]: p["port"] for p in cs["spec"]["ports"]}
        sv = v["collector"]["service"]
        c.check(ports == {"http": sv["httpPort"], "grpc": sv["grpcPort"], "admin": sv["adminPort"]},
                f"collector Service ports http/grpc/admin follow values ({ports})")

    # PodDisruptionBudgets.
    pdbs = rel.of_kind("PodDisruptionBudget")
    for stage in ("collector", "archiver"):
        w = rel.workload(stage)
        want = v[stage]["podDisruptionBudget"]["enabled"]
        mine = [p for p in pdbs if w and selects(dig(p, "spec", "selector", "matchLabels") or {},
                                                   w["spec"]["template"]["metadata"]["labels"])]
        c.check(len(mine) == (1 if want else 0), f"{STAGES[stage][0]}: PodDisruptionBudget iff enabled ({want})")
        for p in mine:
            c.check(p["apiVersion"] == "policy/v1", f"{STAGES[stage][0]}: PDB is policy/v1")

    # ServiceAccounts and IRSA.
    sas = {s["metadata"]["name"]: s for s in rel.of_kind("ServiceAccount")}
    for owner, tpl in rel.pod_templates():
        comp = dig(owner, "metadata", "labels", COMPONENT)
        stage = next((k for k, x in STAGES.items() if x[0] == comp), "setup" if comp == "setup" else None)
        san = tpl["spec"].get("serviceAccountName")
        if v["serviceAccount"]["create"]:
            c.check(san in sas, f"{comp}: ServiceAccount {san} is rendered")
            role = dig(v, stage, "serviceAccount", "roleArn")
            got = dig(sas.get(san, {}), "metadata", "annotations", "eks.amazonaws.com/role-arn")
            c.check(got == (role or None), f"{comp}: IRSA role annotation == values ({role!r})")
        else:
            c.check(not sas, "no ServiceAccount rendered when serviceAccount.create is false")
            c.check(san == (dig(v, stage, "serviceAccount", "name") or "default"),
                    f"{comp}: uses the named ServiceAccount")

    # ServiceMonitor.
    sms = rel.of_kind("ServiceMonitor")
    c.check(len(sms) == (1 if v["serviceMonitor"]["enabled"] else 0), "ServiceMonitor rendered iff enabled")
    for sm in sms:
        c.check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor is monitoring.coreos.com/v1")
        sel = dig(sm, "spec", "selector", "matchLabels") or {}
        exprs = dig(sm, "spec", "selector", "matchExpressions") or []
        allowed = set(exprs[0]["values"]) if exprs else None
        for comp, s in svc_by_comp.items():
            labels = s["metadata"]["labels"]
            c.check(selects(sel, labels) and (allowed is None or labels.get(COMPONENT) in allowed),
                    f"ServiceMonitor selects the {comp} Service")
        ep = dig(sm, "spec", "endpoints", 0) or {}
        c.check(ep.get("port") == "admin" and ep.get("path") == "/metrics", "ServiceMonitor scrapes admin /metrics")

    # Setup hook Job.
    jobs = rel.of_kind("Job")
    c.check(len(jobs) == (1 if v["setup"]["enabled"] else 0), "setup Job rendered iff setup.enabled")
    for j in jobs:
        ann = j["metadata"].get("annotations") or {}
        c.check(set(ann.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"},
                "setup Job is a pre-install,pre-upgrade hook")
        ctr = j["spec"]["template"]["spec"]["containers"][0]
        c.check((ctr.get("args") or [None])[0] == "setup", "setup Job runs `sluice setup`")
        c.check(j["spec"]["template"]["spec"].get("restartPolicy") in ("Never", "OnFailure"), "setup Job restartPolicy")
        cmname = next((vol["configMap"]["name"] for vol in j["spec"]["template"]["spec"]["volumes"] if "configMap" in vol), None)
        hook_cms = [m for m in rel.of_kind("ConfigMap") if m["metadata"]["name"] == cmname]
        c.check(hook_cms and "helm.sh/hook" in (hook_cms[0]["metadata"].get("annotations") or {})
                and int(hook_cms[0]["metadata"]["annotations"].get("helm.sh/hook-weight", "0")) < int(ann.get("helm.sh/hook-weight", "0")),
                "setup Job's ConfigMap is a hook created before it")
        c.check(hook_cms and hook_cms[0]["data"]["sluice.toml"] == toml_text, "setup Job sees the same sluice.toml")
        env = {e["name"] for e in ctr.get("env") or []}
        c.check(("SLUICE_WAREHOUSE__URL" in env) == bool(v["setup"]["warehouse"]),
                "setup Job gets the warehouse URL iff setup.warehouse")
        if v["serviceAccount"]["create"]:
            sa = sas.get(j["spec"]["template"]["spec"].get("serviceAccountName"), {})
            c.check("helm.sh/hook" in (dig(sa, "metadata", "annotations") or {}),
                    "setup ServiceAccount is a hook (exists before the Job)")


# --- scenario checks with --set overrides -------------------------------------------

def check_overrides(c: Checks, r: Renderer) -> None:
    """Scenarios on the default values with --set overrides; a crash in one
    scenario is counted as a failure and the others still run."""
    state = {}

    def baseline():
        state["base"] = Release(r.render())
        state["sums"] = state["base"].checksums()

    def replicas():
        c.scope = "overrides: replicas"
        base, base_sums = state["base"], state["sums"]  # noqa: F841
        sets = ["collector.autoscaling.enabled=false", "collector.replicas=3", "archiver.replicas=5",
                "transcoder.autoscaling.enabled=false", "transcoder.replicas=4", "loader.replicas=2"]
        rel = Release(r.render(sets=sets))
        v = r.values(overrides={"collector": {"autoscaling": {"enabled": False}, "replicas": 3},
                                "archiver": {"replicas": 5},
                                "transcoder": {"autoscaling": {"enabled": False}, "replicas": 4},
                                "loader": {"replicas": 2}})
        check_release(c, rel, v)
        c.check([rel.workload(s)["spec"].get("replicas") for s in STAGES] == [3, 5, 4, 2],
                "replicas follow --set (3, 5, 4, 2)")
        c.check(not rel.of_kind("HorizontalPodAutoscaler"), "no HPA with autoscaling disabled")
        c.check(rel.config()["archiver"]["replica_count"] == 5, "archiver replica_count follows archiver.replicas")

    def autoscaling_bounds():
        c.scope = "overrides: autoscaling bounds"
        base, base_sums = state["base"], state["sums"]  # noqa: F841
        rel = Release(r.render(sets=["collector.autoscaling.minReplicas=4", "collector.autoscaling.maxReplicas=12"]))
        h = [x for x in rel.of_kind("HorizontalPodAutoscaler") if dig(x, "metadata", "labels", COMPONENT) == "collector"]
        c.check(h and (h[0]["spec"]["minReplicas"], h[0]["spec"]["maxReplicas"]) == (4, 12), "collector HPA bounds follow --set")

    def keda():
        c.scope = "overrides: keda"
        base, base_sums = state["base"], state["sums"]  # noqa: F841
        sets = ["keda.enabled=true", "transcoder.autoscaling.enabled=true", "collector.autoscaling.enabled=true"]
        rel = Release(r.render(sets=sets))
        check_release(c, rel, r.values(overrides={"keda": {"enabled": True}}))
        hpa_targets = {dig(x, "spec", "scaleTargetRef", "name") for x in rel.of_kind("HorizontalPodAutoscaler")}
        c.check(rel.workload("transcoder")["metadata"]["name"] not in hpa_targets,
                "transcoder HPA absent when KEDA is enabled (even with autoscaling.enabled)")
        c.check(rel.workload("collector")["metadata"]["name"] in hpa_targets, "collector HPA unaffected by KEDA")
        c.check(len(rel.of_kind("ScaledObject")) == 1 and not rel.of_kind("TriggerAuthentication"),
                "operator auth: a ScaledObject and no TriggerAuthentication")
        trig = dig(rel.of_kind("ScaledObject")[0], "spec", "triggers", 0, "metadata")
        c.check(trig.get("identityOwner") == "operator", "operator auth: identityOwner operator")

        rel = Release(r.render(sets=sets + ["keda.authentication=podIdentity", "config.aws.endpoint_url=http://moto:5000"]))
        ta = rel.of_kind("TriggerAuthentication")
        so = rel.of_kind("ScaledObject")[0]
        c.check(len(ta) == 1 and dig(ta[0], "spec", "podIdentity", "provider") == "aws",
                "podIdentity auth: TriggerAuthentication with the aws provider")
        c.check(dig(so, "spec", "triggers", 0, "authenticationRef", "name") == ta[0]["metadata"]["name"] if ta else False,
                "podIdentity auth: trigger references the TriggerAuthentication")
        c.check(dig(so, "spec", "triggers", 0, "metadata", "awsEndpoint") == "http://moto:5000",
                "KEDA uses config.aws.endpoint_url")
        p = r.run(sets=sets + ["keda.authentication=bogus"])
        c.check(p.returncode != 0 and "keda.authentication" in p.stderr, "an unknown keda.authentication is refused")

    def config_checksum():
        c.scope = "overrides: config checksum"
        base, base_sums = state["base"], state["sums"]  # noqa: F841
        again = Release(r.render()).checksums()
        c.check(again == base_sums, "checksum is stable across identical renders")
        for setting in ("config.transcoder.concurrency=7", "config.stream.name=other-stream",
                        "config.collector.sources.web=wk_new", "archiver.replicas=3"):
            sums = Release(r.render(sets=[setting])).checksums()
            c.check(sums.keys() == base_sums.keys() and all(sums[k] != base_sums[k] for k in sums),
                    f"`--set {setting}` changes checksum/config on every workload")
        sums = Release(r.render(sets=["collector.resources.requests.cpu=300m", "loader.replicas=2"])).checksums()
        c.check(sums == base_sums, "non-config values leave checksum/config unchanged")
        rel = Release(r.render(sets=["setup.enabled=true"]))
        c.check(set(rel.checksums().values()) == set(base_sums.values()), "the setup Job carries the same checksum")

    def config_rendering():
        c.scope = "overrides: config rendering"
        base, base_sums = state["base"], state["sums"]  # noqa: F841
        rel = Release(r.render(sets=["config.collector.http_port=8081", "config.archiver.max_object_bytes=5000000000",
                                     "config.aws.endpoint_url=http://localstack:4566", "config.transcoder.concurrency=3"]))
        conf = rel.config()
        ctr = rel.workload("collector")["spec"]["template"]["spec"]["containers"][0]
        c.check(named_port(ctr, "http") == 8081 and conf["collector"]["http_port"] == 8081,
                "config.collector.http_port drives the containerPort and sluice.toml")
        c.check(conf["archiver"]["max_object_bytes"] == 5000000000, "large integers stay integers (no 5e+09)")
        c.check(conf["aws"].get("endpoint_url") == "http://localstack:4566", "aws.endpoint_url rendered when set")
        c.check("endpoint_url" not in base.config()["aws"], "empty endpoint_url is left out")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump({"config": {"collector": {"sources": {"web app": "wk \"quoted\"", "ios": "wk_ios"},
                                                     "limits": {"max_event_bytes": 65536}},
                                       "extra": {"nested": {"flag": True, "ratio": 0.25, "list": ["a", "b"]}}}}, f)
        try:
            rel = Release(r.render(files=[f.name]))
        finally:
            os.unlink(f.name)
        conf = rel.config()
        c.check(conf["collector"]["sources"] == {"web app": "wk \"quoted\"", "ios": "wk_ios"},
                "odd keys and quotes survive TOML rendering")
        c.check(conf["collector"]["limits"]["max_event_bytes"] == 65536, "values-file numbers render as integers")
        c.check(conf.get("extra") == {"nested": {"flag": True, "ratio": 0.25, "list": ["a", "b"]}},
                "nested tables, booleans, floats and arrays render")

    def misc():
        c.scope = "overrides: misc"
        base, base_sums = state["base"], state["sums"]  # noqa: F841
        rel = Release(r.render(sets=["serviceAccount.create=false", "loader.serviceAccount.name=loader-sa"]))
        check_release(c, rel, r.values(overrides={"serviceAccount": {"create": False},
                                                  "loader": {"serviceAccount": {"name": "loader-sa"}}}))
        rel = Release(r.render(sets=["fullnameOverride=acme"]))
        c.check(all(w["metadata"]["name"].startswith("acme-") for w in rel.workloads()), "fullnameOverride names workloads")
        rel = Release(r.render(release="analytics", namespace="data"))
        c.check(all(d["metadata"].get("namespace") == "data" for d in rel.docs), "objects land in the release namespace")
        rel = Release(r.render(sets=["image.tag=1.2.3", "collector.image.repository=registry.example/collector",
                                     "collector.image.tag=9.9.9"]))
        imgs = {dig(w, "metadata", "labels", COMPONENT): w["spec"]["template"]["spec"]["containers"][0]["image"]
                for w in rel.workloads()}
        c.check(imgs["collector"] == "registry.example/collector:9.9.9" and imgs["transcoder"] == "sluice/transcoder:1.2.3",
                f"stage image overrides win over image.tag ({imgs})")
        p = r.run(sets=["warehouseSecret.name="])
        c.check(p.returncode != 0 and "warehouseSecret.name" in p.stderr, "an empty warehouseSecret.name is refused")
        rel = Release(r.render(sets=["collector.preStopSleepSeconds=0"]))
        c.check("lifecycle" not in rel.workload("collector")["spec"]["template"]["spec"]["containers"][0],
                "preStopSleepSeconds=0 drops the preStop hook")



    for fn in (baseline, replicas, autoscaling_bounds, keda, config_checksum, config_rendering, misc):
        try:
            fn()
        except Exception as e:  # counted, then carry on
            import traceback
            traceback.print_exc()
            c.check(False, f"scenario {fn.__name__} crashed: {e!r}")
            if fn is baseline:
                return


# --- deploy/ and k8s/iam/ ----------------------------------------------------------------

IAM_EXPECT = {
    # Every stage connects all the backends its config names, so the ones
    # without queue work still look up the queue URLs the chart leaves unset.
    "collector.json": {"kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary", "kinesis:ListShards",
                       "s3:PutObject", "sqs:GetQueueUrl"},
    "stream-archiver.json": {"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStreamSummary",
                             "kinesis:ListShards", "s3:PutObject", "s3:GetObject", "s3:ListBucket", "sqs:GetQueueUrl"},
    "transcoder.json": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage", "s3:GetObject", "s3:PutObject"},
    "warehouse-loader.json": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                              "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage", "s3:GetObject"},
}


def check_repo(c: Checks, repo: Path) -> None:
    c.scope = "k8s/iam"
    iam = repo / "k8s" / "iam"
    for fname, expected in IAM_EXPECT.items():
        path = iam / fname
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            c.check(False, f"{fname} is valid JSON ({e})")
            continue
        c.check(doc.get("Version") == "2012-10-17", f"{fname}: Version 2012-10-17")
        actions, wildcard = set(), False
        for st in doc.get("Statement", []):
            acts = st.get("Action", [])
            acts = [acts] if isinstance(acts, str) else acts
            res = st.get("Resource", [])
            res = [res] if isinstance(res, str) else res
            actions |= set(acts)
            wildcard |= any("*" in a for a in acts) or "*" in res
        c.check(actions == expected, f"{fname}: exactly the needed actions (extra {sorted(actions - expected)}, "
                                     f"missing {sorted(expected - actions)})")
        c.check(not wildcard, f"{fname}: no wildcard action and no Resource \"*\"")
    for path in sorted(iam.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except ValueError as e:
            c.check(False, f"{path.name} is valid JSON ({e})")
            continue
        for st in doc.get("Statement", []):
            acts = st.get("Action", [])
            acts = [acts] if isinstance(acts, str) else acts
            res = st.get("Resource", [])
            res = [res] if isinstance(res, str) else res
            c.check(st.get("Effect") == "Allow" and acts and not any(a == "*" or a.endswith(":*") for a in acts)
                    and "*" not in res, f"{path.name} {st.get('Sid')}: explicit actions on named resources")
    tp = (iam / "transcoder.json").read_text() if (iam / "transcoder.json").exists() else ""
    c.check("tables/*" in tp and "rejected/*" in tp and "raw/*" in tp, "transcoder.json scopes S3 to raw/, tables/, rejected/")
    for extra in ("setup.json", "bucket-notification.json", "transcode-queue-policy.json", "README.md"):
        c.check((iam / extra).exists(), f"k8s/iam/{extra} exists")
    qp = iam / "transcode-queue-policy.json"
    if qp.exists():
        text = qp.read_text()
        c.check("s3.amazonaws.com" in text and "aws:SourceArn" in text, "queue policy allows s3.amazonaws.com with aws:SourceArn")
    bn = iam / "bucket-notification.json"
    if bn.exists():
        doc = json.loads(bn.read_text())
        qc = (doc.get("QueueConfigurations") or [{}])[0]
        rules = dig(qc, "Filter", "Key", "FilterRules") or []
        c.check(any(r.get("Name", "").lower() == "prefix" and r.get("Value") == "raw/" for r in rules)
                and any(e.startswith("s3:ObjectCreated") for e in qc.get("Events", [])),
                "bucket notification: ObjectCreated on prefix raw/")

    c.scope = "deploy"
    compose_path = repo / "deploy" / "docker-compose.yml"
    compose = yaml.safe_load(compose_path.read_text()) if compose_path.exists() else {}
    services = compose.get("services") or {}
    for svc in ("moto", "postgres", "setup", "collector", "stream-archiver", "transcoder", "warehouse-loader"):
        c.check(svc in services, f"docker-compose.yml has service {svc}")
    for svc in ("collector", "stream-archiver", "transcoder", "warehouse-loader"):
        s = services.get(svc) or {}
        c.check(dig(s, "depends_on", "setup", "condition") == "service_completed_successfully",
                f"compose {svc} waits for setup to complete")
    for svc in ("setup", "collector", "stream-archiver", "transcoder", "warehouse-loader"):
        s = services.get(svc) or {}
        user = str(s.get("user", ""))
        c.check(re.fullmatch(r"[1-9]\d*(:\d+)?", user), f"compose {svc} runs as a numeric non-root user")
        c.check(s.get("read_only") is True, f"compose {svc} has a read-only root filesystem")
    dockerfile = repo / "deploy" / "Dockerfile"
    text = dockerfile.read_text() if dockerfile.exists() else ""
    c.check("--locked" in text and "rust:1-bookworm" in text, "Dockerfile builds with --locked on rust:1-bookworm")
    c.check(re.search(r"^USER\s+[1-9]\d*(:\d+)?\s*$", text, re.M), "Dockerfile runs as a numeric non-root USER")
    c.check((repo / "deploy" / "Dockerfile.dockerignore").exists(), "deploy/Dockerfile.dockerignore exists")


def guarded(c: Checks, fn) -> None:
    """Run a group of checks; a crash counts as one failure, not a silent pass."""
    try:
        fn()
    except Exception as e:
        import traceback
        traceback.print_exc()
        c.check(False, f"checks crashed: {e!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--helm", required=True)
    ap.add_argument("--chart", required=True, type=Path)
    ap.add_argument("--examples", type=Path)
    ap.add_argument("--kube-version", default="1.31.0")
    ap.add_argument("--summary", type=Path)
    args = ap.parse_args()

    c = Checks()
    r = Renderer(args.helm, args.chart, args.kube_version)
    cases = [("default", [])]
    if args.examples and args.examples.is_dir():
        cases += [(p.stem, [p]) for p in sorted(args.examples.glob("*.yaml"))]
    for name, files in cases:
        c.scope = name
        guarded(c, lambda: check_release(c, Release(r.render(files=files)), r.values(files)))
    check_overrides(c, r)
    guarded(c, lambda: check_repo(c, args.chart.resolve().parent.parent))

    print(f"chart assertions: {c.passed} ok, {c.failed} failing")
    if args.summary:
        args.summary.write_text(json.dumps({"passed": c.passed, "failed": c.failed}))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())

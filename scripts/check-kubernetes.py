"""Cross-checks of deploy/kubernetes/ that a schema cannot make: every Deployment's
selector matches its pods' labels, the Service selects the proxy's pods and targets a port
they name, every secretKeyRef names a key of the Secret, and kustomization.yaml lists every
manifest. Run by scripts/check-containers with PyYAML (from kubernetes-validate's
dependencies) on the path; exits 1 with every problem found."""

import pathlib
import sys

import yaml


def main(directory: str) -> int:
    root = pathlib.Path(directory)
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    manifests = sorted(p.name for p in root.glob("*.yaml") if p.name != "kustomization.yaml")
    problems = []
    if sorted(kustomization.get("resources", [])) != manifests:
        problems.append(f"kustomization.yaml lists {kustomization.get('resources')}, the directory has {manifests}")
    docs = [d for name in manifests for d in yaml.safe_load_all((root / name).read_text()) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    secrets = {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {})) for s in by_kind.get("Secret", [])}
    pods = []
    for deployment in by_kind.get("Deployment", []):
        name = deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        labels = template["metadata"].get("labels", {})
        selector = deployment["spec"]["selector"]["matchLabels"]
        if any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"deployment {name}: selector {selector} does not match its pods' labels {labels}")
        ports = set()
        for container in template["spec"]["containers"]:
            ports |= {p.get("name") for p in container.get("ports", [])}
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in secrets.get(ref["name"], set()):
                    problems.append(f"deployment {name}: {env['name']} reads key {ref['key']} of secret {ref['name']}, which has no such key")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = container.get(probe, {})
                port = (spec.get("tcpSocket") or spec.get("httpGet") or {}).get("port")
                if isinstance(port, str) and port not in ports:
                    problems.append(f"deployment {name}: {probe} names port {port}, which the container does not declare")
        pods.append((labels, ports))
    for service in by_kind.get("Service", []):
        name = service["metadata"]["name"]
        selector = service["spec"]["selector"]
        selected = [ports for labels, ports in pods if all(labels.get(k) == v for k, v in selector.items())]
        if not selected:
            problems.append(f"service {name}: its selector {selector} selects no pods")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str) and not any(target in ports for ports in selected):
                problems.append(f"service {name}: targetPort {target} is no port of the pods it selects")
    for problem in problems:
        print(f"deploy/kubernetes: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

/**
 * Reading the Kubernetes manifests of infra/deploy: the unit checks against the code and the
 * schemas (test/deploy/manifests.test.ts) and the image smoke test (test/images/) read them alike.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../../services/shared/config.ts";

export const DEPLOY = join(REPO_ROOT, "infra", "deploy");

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: unknown };
}
export interface SecurityContext {
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
}
export interface PodSecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  fsGroup?: number;
}
export interface Container {
  name: string;
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
export interface Volume {
  name: string;
  emptyDir?: object;
  configMap?: { name: string };
  secret?: { secretName: string; defaultMode?: number };
}
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { template?: { spec?: { securityContext?: PodSecurityContext; containers?: Container[]; volumes?: Volume[] } } };
}

/** Every document of the YAML files of infra/deploy/<dir> (kustomization.yaml aside). */
export function manifests(dir: string): Manifest[] {
  return readdirSync(join(DEPLOY, dir))
    .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(DEPLOY, dir, f), "utf8")).map((d) => {
        if (d.errors.length) throw new Error(`${dir}/${f}: ${d.errors[0]?.message}`);
        return d.toJS() as Manifest;
      }),
    );
}

/** A Deployment's pod: its security context, its (first and only) container and its volumes. */
export function deploymentPod(all: Manifest[], name: string): { pod: PodSecurityContext; container: Container; volumes: Volume[] } {
  const spec = all.find((m) => m.kind === "Deployment" && m.metadata.name === name)?.spec?.template?.spec;
  const container = spec?.containers?.[0];
  if (!spec || !container) throw new Error(`no Deployment ${name} with a container in infra/deploy`);
  return { pod: spec.securityContext ?? {}, container, volumes: spec.volumes ?? [] };
}

/** What the container's environment holds: variable -> where its value comes from. */
export function environment(all: Manifest[], c: Container): Map<string, "literal" | "secret" | "configmap"> {
  const env = new Map<string, "literal" | "secret" | "configmap">();
  for (const from of c.envFrom ?? []) {
    const map = all.find((m) => m.kind === "ConfigMap" && m.metadata.name === from.configMapRef?.name);
    if (!map) throw new Error(`envFrom names ConfigMap ${from.configMapRef?.name ?? "?"}, which is not in the manifests`);
    for (const key of Object.keys(map.data ?? {})) env.set(key, "configmap");
  }
  for (const v of c.env ?? []) env.set(v.name, v.valueFrom?.secretKeyRef ? "secret" : v.valueFrom ? "configmap" : "literal");
  return env;
}

/** The container's literal values, from its ConfigMaps then its own `env` (which wins, as in Kubernetes). */
export function literalEnvironment(all: Manifest[], c: Container): Record<string, string> {
  const out: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    Object.assign(out, all.find((m) => m.kind === "ConfigMap" && m.metadata.name === from.configMapRef?.name)?.data ?? {});
  }
  for (const v of c.env ?? []) if (v.value !== undefined) out[v.name] = v.value;
  return out;
}

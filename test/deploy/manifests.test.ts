/**
 * The Kubernetes manifests in infra/deploy cannot be applied here (no cluster), so they are checked
 * against the code instead: every variable they set is one the service reads, every variable the
 * service requires is set, secrets come from Secrets only, each service runs as its own Kafka
 * principal over TLS, and each entry point exists, started with the services' V8 heap settings. A config change that the manifests miss fails here.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { configShape as consoleShape } from "../../services/admin/console/main.ts";
import { configShape as dedupShape } from "../../services/dedup/main.ts";
import { configShape as distributionShape } from "../../services/distribution/main.ts";
import { configShape as ingestShape } from "../../services/ingest/main.ts";
import { configShape as sinkShape } from "../../services/partner-sink/main.ts";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { ADMIN_PRINCIPAL, servicePrincipal } from "../../services/shared/kafka-access.ts";
import { SERVICE_NODE_FLAGS } from "../../services/shared/runtime-settings.ts";

const DEPLOY = join(REPO_ROOT, "infra", "deploy");

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: unknown };
}
interface Container {
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { template?: { spec?: { containers?: Container[] } } };
}

function manifests(dir: string): Manifest[] {
  return readdirSync(join(DEPLOY, dir))
    .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(DEPLOY, dir, f), "utf8")).map((d) => {
        if (d.errors.length) throw new Error(`${dir}/${f}: ${d.errors[0]?.message}`);
        return d.toJS() as Manifest;
      }),
    );
}

/** What the container's environment holds: variable -> where its value comes from. */
function environment(all: Manifest[], c: Container): Map<string, "literal" | "secret" | "configmap"> {
  const env = new Map<string, "literal" | "secret" | "configmap">();
  for (const from of c.envFrom ?? []) {
    const map = all.find((m) => m.kind === "ConfigMap" && m.metadata.name === from.configMapRef?.name);
    if (!map) throw new Error(`envFrom names ConfigMap ${from.configMapRef?.name ?? "?"}, which is not in the manifests`);
    for (const key of Object.keys(map.data ?? {})) env.set(key, "configmap");
  }
  for (const v of c.env ?? []) env.set(v.name, v.valueFrom?.secretKeyRef ? "secret" : v.valueFrom ? "configmap" : "literal");
  return env;
}

/** Variables a service cannot start without: no default, not optional. */
function required(shape: z.ZodRawShape): string[] {
  return Object.entries(shape)
    .filter(([, schema]) => !(schema as z.ZodType).safeParse(undefined).success)
    .map(([key]) => key);
}

const SECRETS = [
  "KAFKA_SASL_PASSWORD",
  "CONSOLE_USERS",
  "DATABASE_URL",
  "PARTNER_DATABASE_URL",
  "S3_SECRET_ACCESS_KEY",
  "DISTRIBUTION_PSEUDONYM_SECRET",
];

const SERVICES = [
  {
    dir: "hub",
    deployment: "hashrelay-ingest",
    entry: "services/ingest/main.ts",
    shape: ingestShape,
    principal: servicePrincipal("ingest"),
  },
  { dir: "hub", deployment: "hashrelay-dedup", entry: "services/dedup/main.ts", shape: dedupShape, principal: servicePrincipal("dedup") },
  {
    dir: "hub",
    deployment: "hashrelay-distribution",
    entry: "services/distribution/main.ts",
    shape: distributionShape,
    principal: servicePrincipal("distribution"),
  },
  {
    dir: "hub",
    deployment: "hashrelay-console",
    entry: "services/admin/console/main.ts",
    shape: consoleShape,
    principal: ADMIN_PRINCIPAL,
  },
  {
    dir: "partner-sink",
    deployment: "hashrelay-partner-sink",
    entry: "services/partner-sink/main.ts",
    shape: sinkShape,
    principal: "partner-industry-x",
  },
];

describe("deployment manifests", () => {
  for (const s of SERVICES) {
    it(`${s.deployment}: sets only what the service reads, everything it requires, secrets from Secrets`, () => {
      const all = manifests(s.dir);
      const deployment = all.find((m) => m.kind === "Deployment" && m.metadata.name === s.deployment);
      const container = deployment?.spec?.template?.spec?.containers?.[0];
      if (!container) throw new Error(`no Deployment ${s.deployment} with a container in infra/deploy/${s.dir}`);
      // The V8 heap flags every service runs with, then its entry point (node is the image's entry point).
      expect(container.args).toEqual([...SERVICE_NODE_FLAGS, s.entry]);
      expect(existsSync(join(REPO_ROOT, s.entry))).toBe(true);

      const env = environment(all, container);
      const known = Object.keys(s.shape);
      expect([...env.keys()].filter((k) => !known.includes(k))).toEqual([]);
      expect(required(s.shape).filter((k) => !env.has(k))).toEqual([]);
      for (const key of SECRETS.filter((k) => env.has(k))) expect([key, env.get(key)]).toEqual([key, "secret"]);

      const literal = (name: string) => container.env?.find((v) => v.name === name)?.value;
      const fromConfig = (name: string) => all.find((m) => m.kind === "ConfigMap")?.data?.[name];
      const setting = (name: string) => literal(name) ?? fromConfig(name);
      expect(literal("KAFKA_SASL_USERNAME")).toBe(s.principal);
      expect(setting("KAFKA_SSL")).toBe("true");
      expect(setting("KAFKA_SSL_CA_FILE")).toMatch(/^\/etc\/hashrelay\/kafka-ca\//);
    });
  }

  it("the hub's kustomization lists every manifest of its folder", () => {
    const listed = readFileSync(join(DEPLOY, "hub", "kustomization.yaml"), "utf8");
    for (const f of readdirSync(join(DEPLOY, "hub")).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")) {
      expect(listed).toContain(`- ${f}`);
    }
  });
});

/**
 * The Kubernetes manifests in infra/deploy cannot be applied here (no cluster), so they are checked
 * against the code instead: every variable they set is one the service reads, every variable the
 * service requires is set, secrets come from Secrets only, each service runs as its own Kafka
 * principal over TLS, and each entry point exists, started with the services' V8 heap settings. A config change that the manifests miss fails here.
 * Each document is also validated against the Kubernetes API's JSON schemas (bundled in the
 * kubernetes-models package, so offline), and each pod against the hardening the images are tested
 * with (test/images/hub-image.test.ts): non-root uid 1000, read-only root, no capabilities.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
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
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { DEPLOY, deploymentPod, environment, manifests } from "../support/deploy-manifests.ts";
import type { Manifest } from "../support/deploy-manifests.ts";

/** The schema of each kind the manifests use; a kind not listed here fails the schema test. */
const MODELS: Record<string, (m: Manifest) => { validate(): void }> = {
  "v1/Namespace": (m) => new Namespace(m as never),
  "v1/ConfigMap": (m) => new ConfigMap(m as never),
  "v1/Service": (m) => new Service(m as never),
  "apps/v1/Deployment": (m) => new Deployment(m as never),
};

function schemaErrors(m: Manifest): string | null {
  const model = MODELS[`${m.apiVersion}/${m.kind}`];
  if (!model) return `${m.apiVersion}/${m.kind} has no schema here`;
  try {
    model(m).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
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
      const { container } = deploymentPod(all, s.deployment);
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

  for (const dir of ["hub", "partner-sink"]) {
    it(`${dir}: every document is valid against the Kubernetes API schema`, () => {
      const all = manifests(dir);
      expect(all.length).toBeGreaterThan(0);
      expect(all.map((m) => [`${m.kind}/${m.metadata.name}`, schemaErrors(m)])).toEqual(
        all.map((m) => [`${m.kind}/${m.metadata.name}`, null]),
      );
    });
  }

  it("the schema check refuses a malformed Deployment (it can fail)", () => {
    const { container } = deploymentPod(manifests("hub"), "hashrelay-ingest");
    const broken = structuredClone(manifests("hub").find((m) => m.kind === "Deployment") as Manifest);
    const first = broken.spec?.template?.spec?.containers?.[0] as typeof container;
    first.ports = [{ name: "http", containerPort: "8080" as unknown as number }];
    expect(schemaErrors(broken)).toMatch(/containerPort must be integer/);
    expect(schemaErrors({ ...broken, kind: "StatefulSet" })).toMatch(/no schema here/);
  });

  for (const s of SERVICES) {
    it(`${s.deployment}: runs as uid 1000, non-root, read-only root, no capabilities, /tmp an emptyDir`, () => {
      const { pod, container, volumes } = deploymentPod(manifests(s.dir), s.deployment);
      // The images' user (infra/deploy/Dockerfile USER 1000:1000); fsGroup makes mounted Secrets
      // (mode 0400, owned by root) readable to it, as the hub key file must be.
      expect(pod).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
      expect(container.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      });
      const tmp = container.volumeMounts?.find((v) => v.mountPath === "/tmp");
      expect(volumes.find((v) => v.name === tmp?.name)?.emptyDir).toEqual({});
    });
  }

  it("the hub's kustomization lists every manifest of its folder", () => {
    const listed = readFileSync(join(DEPLOY, "hub", "kustomization.yaml"), "utf8");
    for (const f of readdirSync(join(DEPLOY, "hub")).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")) {
      expect(listed).toContain(`- ${f}`);
    }
  });
});

/**
 * Starting a container from a built image the way a Kubernetes Deployment of infra/deploy would run
 * it: the Deployment's arguments, its ConfigMap and literal settings, a tmpfs for each emptyDir, a
 * read-only bind mount for each other volume, and its container securityContext (read-only root
 * file system, dropped capabilities, no privilege escalation). The user is the image's own, so a
 * test can check it against the pod's runAsUser. Containers share the host's network: the test
 * stack's broker advertises 127.0.0.1.
 */
import { createServer } from "node:net";
import { GenericContainer, Wait } from "testcontainers";
import type { StartedTestContainer } from "testcontainers";
import { expect } from "vitest";
import { ownerLabel } from "./container-stack.ts";
import { deploymentPod, environment, literalEnvironment } from "./deploy-manifests.ts";
import type { Manifest } from "./deploy-manifests.ts";

export interface ManifestContainer {
  readonly container: StartedTestContainer;
  /** The container's recent output, for a failing test to print. */
  readonly output: string[];
}

/** The manifests' hardening that testcontainers has no builder method for. */
class DeployedContainer extends GenericContainer {
  withReadOnlyRootFilesystem(): this {
    this.hostConfig.ReadonlyRootfs = true;
    return this;
  }
  withNoNewPrivileges(): this {
    this.hostConfig.SecurityOpt = [...(this.hostConfig.SecurityOpt ?? []), "no-new-privileges"];
    return this;
  }
}

/** A TCP port free on 127.0.0.1 right now (for a service on the shared host network). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `deployment`'s container from `image`. `values` gives the variables the test supplies
 * (secrets, the stack's addresses): each must be listed in `overrides`, and every variable the
 * manifest sets must end up with a value. `mounts` maps each non-emptyDir mount path to a host path.
 */
export async function startFromManifest(o: {
  image: string;
  all: Manifest[];
  deployment: string;
  values: Record<string, string>;
  mounts: Record<string, string>;
  ready: RegExp;
  overrides: readonly string[];
}): Promise<ManifestContainer> {
  const { container, volumes } = deploymentPod(o.all, o.deployment);
  expect(
    Object.keys(o.values).filter((k) => !o.overrides.includes(k)),
    `${o.deployment}: departures from the manifest not listed as overrides`,
  ).toEqual([]);
  const env = { ...literalEnvironment(o.all, container), ...o.values };
  expect(
    [...environment(o.all, container).keys()].filter((k) => env[k] === undefined),
    `${o.deployment}: variables without a value`,
  ).toEqual([]);
  const output: string[] = [];
  const security = container.securityContext ?? {};
  let c = new DeployedContainer(o.image)
    .withCommand(container.args ?? [])
    .withNetworkMode("host")
    .withEnvironment(env)
    .withLabels(ownerLabel())
    .withDroppedCapabilities(...(security.capabilities?.drop ?? []))
    .withLogConsumer((stream) => {
      stream.on("data", (chunk: Buffer | string) => {
        output.push(chunk.toString());
        if (output.length > 200) output.splice(0, output.length - 200);
      });
    })
    .withWaitStrategy(Wait.forLogMessage(o.ready))
    .withStartupTimeout(180_000);
  if (security.readOnlyRootFilesystem) c = c.withReadOnlyRootFilesystem();
  if (security.allowPrivilegeEscalation === false) c = c.withNoNewPrivileges();
  const binds: { source: string; target: string; mode: "ro" }[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.find((v) => v.name === mount.name);
    if (volume?.emptyDir) c = c.withTmpFs({ [mount.mountPath]: "rw,nosuid,nodev,size=64m" });
    else {
      const source = o.mounts[mount.mountPath];
      if (!source) throw new Error(`${o.deployment} mounts ${mount.mountPath}: the test has nothing to mount there`);
      binds.push({ source, target: mount.mountPath, mode: "ro" });
    }
  }
  try {
    return { container: await c.withBindMounts(binds).start(), output };
  } catch (err) {
    throw new Error(`${o.deployment} did not start: ${(err as Error).message}\n${output.join("").slice(-3000)}`);
  }
}

// Health checks and provisioning used by infra/stack.sh (plain ESM, so it runs with `node` alone).
//   node infra/stack-check.mjs kafka HOST:PORT [N]  -> exit 0 when the broker answers a metadata request
//                                                     (listing at least N brokers: a cluster's nodes)
//   node infra/stack-check.mjs s3-bucket         -> creates $S3_BUCKET if missing (uses the S3_* vars)
import { readFileSync } from "node:fs";
import { Kafka, logLevel } from "kafkajs";

const [cmd, arg, minBrokers] = process.argv.slice(2);

async function kafkaReady(brokers, want = 1) {
  const kafka = new Kafka({
    clientId: "hashrelay-stack-check",
    brokers: brokers.split(","),
    // TLS and SASL on a busy machine can take seconds; a miss here means "not ready yet".
    connectionTimeout: 5000,
    requestTimeout: 10000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
    ...(process.env.KAFKA_SSL_CA_FILE ? { ssl: { ca: [readFileSync(process.env.KAFKA_SSL_CA_FILE, "utf8")] } } : {}),
    ...(process.env.KAFKA_SASL_USERNAME
      ? { sasl: { mechanism: "scram-sha-512", username: process.env.KAFKA_SASL_USERNAME, password: process.env.KAFKA_SASL_PASSWORD } }
      : {}),
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    await admin.listTopics();
    if (cluster.brokers.length < want) throw new Error(`${cluster.brokers.length} brokers in metadata, want ${want}`);
    console.log(`kafka ok: cluster ${cluster.clusterId}, controller ${cluster.controller}`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

async function s3Bucket() {
  const { S3Client, HeadBucketCommand, CreateBucketCommand } = await import("@aws-sdk/client-s3");
  const env = process.env;
  const client = new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION ?? "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY },
  });
  const Bucket = env.S3_BUCKET;
  try {
    await client.send(new HeadBucketCommand({ Bucket }));
    console.log(`s3 bucket ${Bucket} exists`);
  } catch (err) {
    if (err?.$metadata?.httpStatusCode !== 404) throw err;
    await client.send(new CreateBucketCommand({ Bucket }));
    console.log(`s3 bucket ${Bucket} created`);
  }
}

try {
  if (cmd === "kafka") await kafkaReady(arg ?? "127.0.0.1:19092", Number(minBrokers ?? 1));
  else if (cmd === "s3-bucket") await s3Bucket();
  else throw new Error(`unknown command ${cmd ?? "(none)"}; use kafka HOST:PORT | s3-bucket`);
  process.exit(0);
} catch (err) {
  console.error(`${cmd}: ${err?.message ?? err}`);
  process.exit(1);
}

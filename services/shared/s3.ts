/** S3 client for the hub's object store (AWS S3 in production, the local S3-compatible server in dev). */
import { S3Client } from "@aws-sdk/client-s3";

export interface S3Settings {
  readonly S3_ENDPOINT?: string | undefined;
  readonly S3_REGION: string;
  readonly S3_ACCESS_KEY_ID: string;
  readonly S3_SECRET_ACCESS_KEY: string;
}

export function createS3Client(s: S3Settings): S3Client {
  return new S3Client({
    region: s.S3_REGION,
    credentials: { accessKeyId: s.S3_ACCESS_KEY_ID, secretAccessKey: s.S3_SECRET_ACCESS_KEY },
    // A custom endpoint means a local or on-premises server: those need path-style addressing.
    ...(s.S3_ENDPOINT ? { endpoint: s.S3_ENDPOINT, forcePathStyle: true } : {}),
  });
}

/**
 * An S3 client that answers without a network and keeps what is written: every PutObject's key
 * and body in `puts` (what exports.ts writes for the test vectors). A real S3Client with one
 * middleware in front, so that code driving it the way the SDK's own helpers do (lib-storage's
 * Upload reads the client's config) sees a client as it is. Any command but PutObject is refused.
 */
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";

export function recordingS3(puts: Map<string, Buffer>): S3Client {
  const s3 = new S3Client({
    region: "us-east-1",
    endpoint: "http://s3.stand-in.invalid",
    forcePathStyle: true,
    credentials: { accessKeyId: "stand-in", secretAccessKey: "stand-in" },
  });
  s3.middlewareStack.add(
    (_next, context) => async (args) => {
      if (context.commandName !== PutObjectCommand.name)
        throw new Error(`the recording S3 client only takes PutObject, not ${context.commandName}`);
      const input = args.input as { Key?: string; Body?: Uint8Array | string };
      puts.set(input.Key as string, Buffer.from(input.Body ?? ""));
      return { output: { $metadata: {} }, response: {} } as never;
    },
    { step: "initialize", name: "recordingS3" },
  );
  return s3;
}

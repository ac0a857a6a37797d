/** What the broker lets one partner's principal see: its own feed, and nothing of anyone else's. */
import { createKafka, kafkaConnection } from "../services/shared/kafka.ts";
import type { KafkaConnectionSettings } from "../services/shared/kafka.ts";
import { localPrincipalEnv } from "../services/shared/config.ts";
import { partnerPrincipal } from "../services/shared/kafka-access.ts";
import { createLogger } from "../services/shared/logging.ts";

export interface AccessProbe {
  readonly topic: string;
  /** "readable", or the broker's refusal (TOPIC_AUTHORIZATION_FAILED, ...). */
  readonly outcome: string;
}

/** Asks for each topic's metadata as the partner: a topic it may not describe it may not read either. */
export async function probePartnerAccess(broker: KafkaConnectionSettings, partnerId: string, topics: string[]): Promise<AccessProbe[]> {
  const principal = partnerPrincipal(partnerId);
  const creds = localPrincipalEnv(principal);
  const kafka = createKafka({
    ...kafkaConnection({ ...broker, ...creds }),
    clientId: `demo-access-${partnerId}`,
    logger: createLogger("demo", "silent"),
  }); // refusals are the point: not logged as errors
  const admin = kafka.admin();
  await admin.connect();
  try {
    const probes: AccessProbe[] = [];
    for (const topic of topics) {
      try {
        await admin.fetchTopicMetadata({ topics: [topic] });
        probes.push({ topic, outcome: "readable" });
      } catch (err) {
        probes.push({ topic, outcome: (err as { type?: string }).type ?? (err as Error).message });
      }
    }
    return probes;
  } finally {
    await admin.disconnect();
  }
}

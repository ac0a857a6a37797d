import type { Producer } from "kafkajs";
import { describe, expect, it } from "vitest";
import { RenewingProducer, producerStateLost } from "./kafka.ts";

/** A stand-in for a kafkajs producer: fails its sends with the given error until told otherwise. */
function fakeProducer(id: number, log: string[], failWith: () => Error | null): Producer {
  const fake = {
    connect: async () => void log.push(`connect ${id}`),
    disconnect: async () => void log.push(`disconnect ${id}`),
    send: async () => {
      const err = failWith();
      log.push(`send ${id}${err ? " failed" : ""}`);
      if (err) throw err;
      return [];
    },
    sendBatch: async () => [],
  };
  return fake as unknown as Producer;
}

const protocolError = (type: string) => Object.assign(new Error(type), { name: "KafkaJSProtocolError", type });

describe("renewing producer", () => {
  it("recognises lost producer state, also inside kafkajs's retry wrapper", () => {
    expect(producerStateLost(protocolError("OUT_OF_ORDER_SEQUENCE_NUMBER"))).toBe(true);
    expect(producerStateLost(Object.assign(new Error("retries exceeded"), { originalError: protocolError("UNKNOWN_PRODUCER_ID") }))).toBe(
      true,
    );
    expect(producerStateLost(protocolError("NOT_LEADER_FOR_PARTITION"))).toBe(false);
    expect(producerStateLost(new Error("ECONNREFUSED"))).toBe(false);
  });

  it("replaces the kafkajs producer after the broker lost its state; the failed send still fails, the retry goes out on the new one", async () => {
    const log: string[] = [];
    let made = 0;
    // The first producer's sequence is out of step with the broker for good; a new one is not.
    const producer = new RenewingProducer(() => {
      const id = ++made;
      return fakeProducer(id, log, () => (id === 1 ? protocolError("OUT_OF_ORDER_SEQUENCE_NUMBER") : null));
    });
    await producer.connect();
    await expect(producer.send({ topic: "t", messages: [] })).rejects.toThrow("OUT_OF_ORDER_SEQUENCE_NUMBER");
    await producer.send({ topic: "t", messages: [] });
    await producer.disconnect();
    expect(log).toEqual(["connect 1", "send 1 failed", "disconnect 1", "connect 2", "send 2", "disconnect 2"]);
  });

  it("keeps its producer through other failures", async () => {
    const log: string[] = [];
    let made = 0;
    let fail = true;
    const producer = new RenewingProducer(() => fakeProducer(++made, log, () => (fail ? new Error("connect ECONNREFUSED") : null)));
    await producer.connect();
    await expect(producer.send({ topic: "t", messages: [] })).rejects.toThrow("ECONNREFUSED");
    fail = false;
    await producer.send({ topic: "t", messages: [] });
    expect(made).toBe(1);
  });
});

-- Next offset to read per consumed partition, committed in the same transaction as the state change.
CREATE TABLE IF NOT EXISTS consumer_offsets (
  consumer_group   text NOT NULL,
  topic            text NOT NULL,
  partition        integer NOT NULL,
  next_offset      bigint NOT NULL,
  PRIMARY KEY (consumer_group, topic, partition)
);

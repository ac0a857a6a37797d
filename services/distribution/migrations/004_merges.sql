-- Which record each merged-away record went into, from its merge revision. While the survivor's own
-- merge revision is on its way, partners keep the merged record's hashes (planner.awaitingSurvivor);
-- planning the survivor then re-plans them through this table (survivor -> merged records).
CREATE TABLE IF NOT EXISTS distributed_merges (
  merged_id    uuid PRIMARY KEY,
  survivor_id  uuid NOT NULL
);
CREATE INDEX IF NOT EXISTS distributed_merges_survivor ON distributed_merges (survivor_id);

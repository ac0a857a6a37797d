/**
 * Every PostgreSQL advisory lock id hashrelay takes, each with what it serialises. Ids share one
 * key space per database, so each one appears here once and nowhere else; a new lock takes the
 * next free id. Changing an id while instances of the old release run would let both sides hold
 * "the" lock at once: add a new id and retire the old one instead.
 */

/** Session lock: one instance at a time applies schema migrations to a database (postgres.ts migrate). */
export const MIGRATION_LOCK = 7431001;

/** Transaction lock: dedup's apply step, over every partition and instance (one canonical store). */
export const DEDUP_APPLY_LOCK = 7431002;

/** Session lock: one relay of dedup's outbox per hub database, so per-key order is kept. */
export const DEDUP_RELAY_LOCK = 7431003;

/**
 * Transaction lock: distribution's apply step over every partition and instance, policy
 * reconciliation and the claims backfill; an S3 snapshot holds it while it reads, so no feed record
 * is issued during the read.
 */
export const DISTRIBUTION_APPLY_LOCK = 7431004;

/** Session lock: one relay of feed_outbox per hub database, so each feed partition's order is kept. */
export const DISTRIBUTION_RELAY_LOCK = 7431005;

/**
 * Session lock: one S3 export round (export-schedule.ts) per hub database at a time, whatever the
 * number of distribution instances; an instance that finds it taken skips its round.
 */
export const DISTRIBUTION_EXPORT_LOCK = 7431006;

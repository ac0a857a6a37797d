/**
 * How every service process is started, for memory: V8 heap flags on the command line
 * (`node <SERVICE_NODE_FLAGS> services/<name>/main.ts`) and glibc malloc settings in the
 * environment (SERVICE_MALLOC_ENV). The image (infra/deploy/Dockerfile: the malloc settings as ENV,
 * the flags in its default command), the deploy manifests (the flags), the process supervisor of the
 * tests and benchmarks (test/support/processes.ts) and the demo all apply them; test/deploy holds
 * the image and the manifests to this file.
 *
 * V8 heap. Left alone, V8 sizes its heap from the memory of the machine, not from what the process
 * needs: on a large host it gives the young generation large semi-spaces and lets the old
 * generation grow to several times what survived the last full collection before collecting again,
 * so a service with a small live JavaScript heap sits at many times that resident, mostly garbage
 * and the Buffers that garbage still holds; in a small container the same service gets other
 * defaults. Fixed values make its memory the same wherever it runs:
 *   - 8 MB semi-spaces (a 16 MB young generation): a round's objects survive a scavenge or two
 *     whatever its size, and a larger one only kept more garbage resident (docs/operators.md);
 *   - a 1024 MB old generation. With a limit below about 2 GB V8 also grows the heap by a smaller
 *     factor after each full collection, so garbage goes sooner; a lower limit kept the resident set
 *     no lower but cost CPU in collections (docs/operators.md, "Memory", has the figures). A service
 *     needs a small part of it: a round is at most CONSUMER_ROUND_MAX_MESSAGES messages, S3 exports
 *     and the sink's bootstrap stream, and typed arrays (dedup's near-duplicate index) and Buffers
 *     live outside the V8 heap and this limit. Reaching it is a bug: the process stops with a
 *     heap-out-of-memory error and is restarted;
 *   - --expose-gc, so that distribution and the partner sink can give back the pages a burst left in
 *     V8's page pool once the burst is over (release-memory.ts); nothing else calls gc.
 *
 * malloc. Buffers (Kafka fetches, PostgreSQL results, encoded records) are malloc'd outside the V8
 * heap. glibc gives each thread that allocates an arena of its own (V8's helper threads, libuv's
 * pool), each keeping what was freed in it, and raises its mmap threshold after large frees, so that
 * later large buffers land in the heap between small ones and their memory is not given back. Two
 * arenas, and a fixed threshold so that every buffer of 128 KiB or more is mapped on its own and
 * unmapped when freed, keep the resident set close to what is in use.
 */

export const SERVICE_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=8", "--max-old-space-size=1024", "--expose-gc"];

export const SERVICE_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "131072",
};

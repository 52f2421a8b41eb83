// Every size, count and interval the audit trail bounds, in one place, with how they relate.
// Must not depend on anything beyond the standard library (STYLE.md, Limits and memory).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gh::rec::limits {

// Bytes of the fixed parts of the on-disk format (record/FORMAT.md).
inline constexpr size_t segment_header_bytes = 256;
inline constexpr size_t chain_hash_bytes = 32;     // SHA-256
inline constexpr size_t record_prefix_bytes = 27;  // length..field count
inline constexpr size_t field_header_bytes = 6;    // u16 tag + u32 length
inline constexpr size_t node_id_bytes_max = 64;    // fixed slot in the segment header
inline constexpr size_t key_id_bytes = 16;          // SHA-256(public key), first 16 bytes
inline constexpr size_t public_key_bytes = 32;      // Ed25519 (RFC 8032)
inline constexpr size_t signature_bytes = 64;       // Ed25519 (RFC 8032 §5.1.6)
inline constexpr size_t key_file_bytes_max = 64 * 1024;
inline constexpr size_t keyring_file_bytes_max = 4 * 1024 * 1024;
// One anchor line (record/FORMAT.md, "Anchor file"): a control record in base64 and a few names.
inline constexpr size_t anchor_line_bytes_max = 4096;

// One record, all fields and its hash included. Readers refuse larger length words as damage.
inline constexpr size_t record_bytes_max = 1024 * 1024;
inline constexpr size_t record_bytes_min = record_prefix_bytes + chain_hash_bytes;
inline constexpr size_t record_field_count_max = 1024;
// Statement text beyond this is cut by the caller, the full size kept in kTextBytes (RecordText).
inline constexpr size_t record_text_bytes_max = 64 * 1024;

// Strict durability while the trail cannot be written: a session whose records wait for room in
// the full ring goes on refusing its statements (each adds its records to the wait) up to this
// many bytes of waiting field values, then waits for the ring like any session.
inline constexpr size_t session_pending_bytes_max = 1024 * 1024;

// Per-shard ring: a power of two, allocated once.
inline constexpr size_t ring_bytes_min = 256 * 1024;
inline constexpr size_t ring_bytes_default = 4 * 1024 * 1024;
inline constexpr size_t ring_bytes_max = 1024 * 1024 * 1024;

// Segments rotate once the next record would pass this size (a lone record may exceed it).
inline constexpr uint64_t segment_bytes_min = 4 * 1024;
inline constexpr uint64_t segment_bytes_default = 64 * 1024 * 1024;
inline constexpr uint64_t segment_bytes_max = 4ull * 1024 * 1024 * 1024;

// The flusher gathers at most this many bytes into one write(2) per shard.
inline constexpr size_t write_batch_bytes_max = 1024 * 1024;

inline constexpr uint32_t flush_interval_ms_default = 100;
inline constexpr uint32_t flush_interval_ms_max = 60 * 1000;
// Between passes of a flusher with work (interval durability): each write(2) then carries a batch
// and the thread wakes ~500 times a second instead of once per few records (bench/RESULTS.md).
inline constexpr uint32_t poll_interval_us_default = 2000;
inline constexpr uint32_t poll_interval_us_max = 100 * 1000;
// Longest sleep of an idle flusher: records still reach their segment within this (plus a
// write), far inside the default flush_interval_ms.
inline constexpr uint32_t idle_poll_interval_us_max = 4000;
inline constexpr uint32_t retry_interval_ms_default = 1000;
inline constexpr uint32_t retry_interval_ms_max = 60 * 1000;

inline constexpr size_t shard_count_max = 1024;

// Signed checkpoints (heartbeats when idle) and rotation by age (record/FORMAT.md).
inline constexpr uint32_t checkpoint_interval_ms_default = 60 * 1000;
inline constexpr uint32_t checkpoint_interval_ms_min = 10;
inline constexpr uint32_t checkpoint_interval_ms_max = 3600 * 1000;
inline constexpr uint64_t segment_age_ms_default = 3600 * 1000;
inline constexpr uint64_t segment_age_ms_max = 7ull * 24 * 3600 * 1000;
// Anchor lines waiting for their file (a failing anchor file) are kept up to this many.
inline constexpr size_t pending_anchors_max = 4096;

static_assert(record_prefix_bytes == 4 + 1 + 8 + 8 + 4 + 2);
static_assert(record_bytes_min < record_bytes_max);
static_assert(record_text_bytes_max + 4096 <= record_bytes_max,
              "a truncated statement plus its identity fields must fit one record");
static_assert(record_field_count_max <= UINT16_MAX);
static_assert(record_bytes_max <= UINT32_MAX);
static_assert((ring_bytes_min & (ring_bytes_min - 1)) == 0);
static_assert((ring_bytes_default & (ring_bytes_default - 1)) == 0);
static_assert((ring_bytes_max & (ring_bytes_max - 1)) == 0);
static_assert(ring_bytes_min <= ring_bytes_default && ring_bytes_default <= ring_bytes_max);
static_assert(ring_bytes_min / 2 >= record_text_bytes_max + 4096,
              "the smallest ring still takes a maximal statement record");
static_assert(write_batch_bytes_max >= record_bytes_max, "a batch always holds one record");
static_assert(session_pending_bytes_max >= 4 * record_text_bytes_max,
              "a session refuses a few maximal statements before it waits");
static_assert(segment_bytes_min > segment_header_bytes);
static_assert(segment_bytes_min <= segment_bytes_default &&
              segment_bytes_default <= segment_bytes_max);
static_assert(shard_count_max <= UINT16_MAX + 1);
static_assert(checkpoint_interval_ms_min <= checkpoint_interval_ms_default &&
              checkpoint_interval_ms_default <= checkpoint_interval_ms_max);
static_assert(segment_age_ms_default <= segment_age_ms_max);
static_assert(anchor_line_bytes_max > 4 * (record_prefix_bytes + 512 + 300) / 3,
              "an anchor line holds the largest control record in base64");
static_assert(poll_interval_us_default <= idle_poll_interval_us_max,
              "records reach their segment as soon under load as when idle");
static_assert(idle_poll_interval_us_max / 1000 < flush_interval_ms_default,
              "an idle flusher wakes well within the flush interval");

}  // namespace gh::rec::limits

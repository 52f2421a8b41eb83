// Reading a trail back: record iteration, verification, session summaries and session loading.
// Reads segment files with blocking I/O (CLI and admin paths); never used by shard threads.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "record/event.hpp"
#include "record/keys.hpp"
#include "record/segment.hpp"

namespace gh::rec {

// What verify_trail found first. kTruncatedTail is what a crash leaves (the newest segment of a
// shard ends inside a record); every other kind means the files were altered, reordered, lost or
// corrupted after they were written.
enum class FindingKind : uint8_t {
  kTruncatedTail,
  kUnreadable,      // a file that exists cannot be read
  kBadHeader,       // magic, version, padding, shard or sequence wrong
  kMissingSegment,  // a gap in the segment sequence
  kSegmentLink,     // header's previous-segment hash differs from the previous segment's end
  kBadRecord,       // framing: length, field layout, type; or a cut in the middle of the trail
  kChainMismatch,   // a record's chain hash differs from SHA-256(previous hash || bytes)
  kBadControl,      // a seal, checkpoint or recovery record does not match what it covers
  kBadSignature,    // a control record's Ed25519 signature does not verify
  kUnknownKey,      // a segment is signed by a key that is not in the keyring
  kForeignSegment,  // a segment written by another node
  kUnsealed,        // a segment that is not the newest ends without a seal or recovery record
  kAnchorMismatch,  // an anchored checkpoint or seal is missing from the trail or differs
  kBadAnchor,       // an anchor file line that does not parse or whose signature is wrong
};
std::string_view finding_kind_name(FindingKind kind);

struct VerifyFinding {
  FindingKind kind = FindingKind::kBadRecord;
  uint16_t shard = 0;
  std::string segment_file;  // relative to the trail dir, e.g. "shard-00/00000003.seg"
  uint64_t segment_sequence = 0;
  std::optional<uint64_t> record_index;  // within the segment, from 0; none for header findings
  uint64_t byte_offset = 0;              // in the segment file
  std::string what;
  bool tampering() const { return kind != FindingKind::kTruncatedTail; }
};

struct VerifyReport {
  uint64_t shards = 0;
  uint64_t segments = 0;
  uint64_t records = 0;   // intact records checked
  uint64_t sessions = 0;  // distinct session ids among them
  uint64_t control_records = 0;  // seals, checkpoints and recovery records among `records`
  uint64_t seals = 0;
  uint64_t checkpoints = 0;  // heartbeats included
  uint64_t heartbeats = 0;
  uint64_t anchors = 0;      // anchor file lines checked against the trail
  bool signatures_checked = false;
  bool anchors_checked = false;  // an anchor file was given and read
  std::string node_id;  // the node that wrote the trail (its first segment's header)
  // The first sign of tampering or corruption (the walk stops there), else the first truncated
  // tail (the walk checks the other shards first).
  std::optional<VerifyFinding> finding;
  // Acknowledged crash leftovers that do not break the chain (a torn tail that the next segment
  // links around, a .partial file from an interrupted rotation).
  std::vector<std::string> notes;
  bool ok() const { return !finding.has_value(); }
};

struct VerifyOptions {
  // Checks every control record's signature, and that each segment's key belongs to its node.
  // Without a keyring, signatures are not checked (the report says so).
  const Keyring* keyring = nullptr;
  // The anchor file (recording.anchor_file): every checkpoint and seal in it must be in the trail,
  // byte for byte. Catches records cut from the end and deleted newest segments.
  std::string anchor_file;
};

// Fails only when `dir` (or the anchor file) cannot be read; everything wrong inside is a
// finding.
[[nodiscard]] Result<VerifyReport> verify_trail(const std::string& dir,
                                                const VerifyOptions& options = {});

struct TrailRecord {
  uint16_t shard = 0;
  uint64_t segment_sequence = 0;
  const ScannedRecord& record;  // views valid during the callback only
};
// Visits every intact record, shard by shard (ascending), each shard in segment and record
// order. Checks framing only (verify_trail checks hashes); a damaged spot ends that shard's walk.
// `on_record` returns false to stop the whole walk.
[[nodiscard]] Result<void> for_each_record(
    const std::string& dir, const std::function<bool(const TrailRecord&)>& on_record);

// A segment holding records of a session.
struct SegmentRef {
  uint16_t shard = 0;
  uint64_t segment = 0;  // segment sequence
  auto operator<=>(const SegmentRef&) const = default;
};

struct SessionSummary {
  uint64_t session_id = 0;
  uint16_t shard = 0;
  uint64_t start_ns = 0;           // first event
  uint64_t end_ns = 0;             // last event
  bool ended = false;              // a kSessionEnd (or kAuthFailure) was recorded
  std::vector<std::string> chain;  // subject first, then actors
  std::vector<std::string> groups;
  std::string protocol, connection, client_address, user, database, token_id, issuer;
  std::vector<std::pair<std::string, std::string>> claims;  // CI provenance, as recorded
  std::vector<std::string> lineage;  // jtis the session's token was exchanged from
  uint64_t events = 0;
  uint64_t statements = 0;
  uint64_t errors = 0;  // kError and kAuthFailure events
  // Verdicts: statements refused by a guardrail (a gateway error naming its rule), and rows whose
  // values were masked. The statements not refused were allowed.
  uint64_t refused = 0;
  uint64_t masked_rows = 0;
  std::string end_reason;
  std::vector<SegmentRef> segments;  // ascending; filled by list_sessions and the catalog
  uint64_t allowed() const { return statements >= refused ? statements - refused : 0; }
  bool operator==(const SessionSummary&) const = default;
};

struct SessionFilter {
  std::optional<uint64_t> session_id;
  std::string chain_member;  // any member of the chain equals it
  std::string user;          // database user
  std::string connection;
  // CI provenance: every (claim, value) must be among the session's claims.
  std::vector<std::pair<std::string, std::string>> claims;
  std::optional<uint64_t> from_ns;  // sessions still active at or after
  std::optional<uint64_t> to_ns;    // sessions started at or before
  size_t limit = 0;                 // 0: all
};
bool matches(const SessionFilter& filter, const SessionSummary& summary);

// Folds one more record of a session into `summary` (what list_sessions does for each record).
// The first record folded sets session_id and shard. Used by the catalog to build partial
// summaries (record/catalog.hpp).
void fold_record(SessionSummary& summary, const RecordView& record, uint16_t shard,
                 uint64_t segment);

// Summaries sorted by start time, then id. Scans every segment (the catalog answers from its
// index instead: record/catalog.hpp).
[[nodiscard]] Result<std::vector<SessionSummary>> list_sessions(const std::string& dir,
                                                                const SessionFilter& filter = {});
// The session's events in sequence order; fails when no record carries `session_id`.
[[nodiscard]] Result<std::vector<StoredEvent>> load_session(const std::string& dir,
                                                            uint64_t session_id);
// The summary of already loaded events (e.g. for a replay header).
SessionSummary summarize_session(std::span<const StoredEvent> events);

}  // namespace gh::rec

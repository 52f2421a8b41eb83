// The audit event model and its record encoding (record/FORMAT.md, "Record").
// Pure functions over bytes: no I/O, no threads, no protocol knowledge.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "record/limits.hpp"

namespace gh::rec {

// Values 1..127 are session events; 128..255 are trail control records (record/FORMAT.md,
// "Control records"), which belong to no session. Readers keep unknown types as they are.
enum class EventType : uint8_t {
  kSessionStart = 1,
  kStatement,
  kCompletion,
  kError,
  kSessionEnd,
  kAuthFailure,
  kNotice,
  // A result row's values as the client got them, none of them masked (a masked row is a
  // kMaskedRow), while they fit the statement's result budget.
  kResultRow = 8,
  // One Execute of an extended-protocol portal: the prepared statement's text and the
  // parameter values bound to it (cut, masked), recorded as the client sends it.
  kExecute = 9,
  // SSH (numbered apart): bytes a channel's program wrote (exec output), as the client got them.
  kOutput = 16,
  // SSH: bytes the caller typed into a terminal or shell channel, as the host got them.
  kInput = 17,
  // SSH: a terminal request relayed to the host (pty-req with its size, shell, window-change,
  // signal).
  kTerminal = 18,
  // SSH: one file operation of an SFTP channel (open, close with its byte totals, remove,
  // rename...), with the host's status.
  kFileOperation = 20,
  // SSH port forwarding: bytes one forwarded TCP connection carried one way (channel,
  // direction), recorded up to the per-direction budget; its open is a statement, its close a
  // completion with the byte totals.
  kForwardData = 22,
  // Guardrails (numbered apart): a DataRow whose values were masked, as the client got it.
  kMaskedRow = 40,
  // An approval hold: the statement held for review ("requested"), then its outcome
  // ("approved" with the approvers, "denied" with who and why, "expired", "cancelled").
  kReview = 41,
  // The control plane (numbered apart): one admin API request (token exchange, revocation...),
  // with its action, outcome, HTTP status, the identity it was about and details.
  kAdmin = 32,
  // Trail control records (session id 0), signed by the node key.
  kSeal = 128,  // the last record of a segment: its record count, last hash and Merkle root
  kCheckpoint,  // periodic, also when idle (a heartbeat); copied to the anchor file
  kRecovery,    // the first record of a segment whose predecessor was never sealed (a crash)
};

// Trail control records are types 128..255 (is_control_type) and carry no session.
inline constexpr bool is_control_type(EventType type) { return static_cast<uint8_t>(type) >= 128; }

// Readers skip tags they do not know, so new tags never break old readers.
enum class FieldTag : uint16_t {
  kProtocol = 1,
  kConnection,
  kClientAddress,
  kChainMember,  // repeated, earliest first: subject, then actors
  kGroup,        // repeated
  kTokenId,
  kIssuer,
  kStatementKind,  // "query" | "parse"
  kText,
  kTag,
  kSqlState,
  kMessage,
  kOrigin,  // "upstream" | "gateway"
  kReason,
  kUser,
  kDatabase,
  kTextBytes,  // decimal size of kText before truncation (only when truncated)
  kPortal,         // kExecute: the portal's name (absent for the unnamed portal)
  kStatementName,  // kExecute: the prepared statement's name (absent for the unnamed one)
  kParameter,      // kExecute, repeated in order: a bound value as text, binary as \x hex, cut
  kParameterSizes,    // kExecute: comma-separated decimal full sizes of the values (-1: NULL)
  kParameterFormats,  // kExecute, when a value is binary: comma-separated format codes (0, 1)
  // Guardrails (numbered apart so that other modules can add tags before them).
  kRule = 48,  // the deny / approve / mask rule behind a refusal or a masking (repeated)
  kReviewId,       // kReview: the review's id ("r-" and 16 hex digits)
  kStatementHash,  // kReview: lower-case hex SHA-256 of the exact statement held
  kApprover,       // kReview, repeated: the chain of an approver, or of the one who denied
  // SSH (numbered apart so that other modules can add tags before them).
  kStream = 64,  // kOutput: "out" or "err"
  kChannel,      // decimal channel number within the session, from 1
  kRequest,      // kTerminal: "pty-req", "shell", "window-change" or "signal" (kText: its name)
  kTerminalType, // kTerminal pty-req: the caller's TERM
  kColumns,      // kTerminal pty-req, window-change: decimal
  kRows,         // kTerminal pty-req, window-change: decimal
  // SFTP (numbered apart): kFileOperation's fields.
  kFileOperation = 72,  // "open", "close", "remove", "rename", "mkdir", "stat"...
  kPath,                // the path the operation named (as the client sent it)
  kTargetPath,          // rename, symlink, hardlink: the second path
  kOpenFlags,           // open, close: "read,write,create,truncate"...
  kBytesRead,           // close: decimal file bytes the host sent for the handle
  kBytesWritten,        // close: decimal file bytes the client sent for the handle
  kEntries,             // close of a directory: decimal entries listed
  kFileStatus,          // "ok", "eof", "no such file", "permission denied"..., "unanswered"
  // Result sizes on kCompletion (numbered apart), decimal; only when the statement returned rows.
  kResultRows = 80,     // result rows sent to the client
  kResultBytes,         // their DataRow bytes on the wire
  kResultRowsRecorded,  // rows whose values are in the trail (kResultRow, kMaskedRow)
  kResultRowsCut,       // rows not recorded: past recording.statement_result_bytes_max
  kResultColumns,       // first recorded row of a result: the column names, joined by tabs
  // Identity and the control plane (numbered apart so that other modules can add tags before).
  kClaim = 96,    // repeated: "name=value", a CI provenance claim of the session's token
  kTokenLineage,  // repeated, earliest first: jtis of the tokens the session's was exchanged from
  kAction,        // kAdmin: "token_exchange", "revoke", "authenticate"...
  kOutcome,       // kAdmin: "granted", "refused" or "failed"; kReview: requested, approved...
  kHttpStatus,    // kAdmin: decimal HTTP status of the answer
  kDetail,        // kAdmin, repeated: "name=value" (issued_jti=..., scope=..., revoked_value=...)
  // SSH port forwarding (numbered apart).
  kOriginator = 112,  // statement of a forward: "host:port" the forwarded connection came from
  kDirection,         // kForwardData: "to_target" or "from_target"
  kBytesToTarget,     // completion of a forward: decimal bytes relayed toward the target
  kBytesFromTarget,   // completion of a forward: decimal bytes relayed back from the target
  // Fields of control records, fixed-size little-endian binary (record/FORMAT.md).
  kCtlShard = 128,          // u16
  kCtlSegment,              // u64, the segment holding the record
  kCtlHeaderDigest,         // SHA-256 of that segment's 256-byte header
  kCtlRecords,              // u64, records before this one in its segment (recovery: see FORMAT)
  kCtlLastHash,             // chain hash of the last of those records
  kCtlMerkleRoot,           // RFC 9162 root over the chain hashes of those records
  kCtlHeartbeat,            // u8, 1 when no session record came since the previous checkpoint
  kCtlPreviousHeaderDigest, // recovery: the unsealed segment's header digest
  kCtlEndOffset,            // recovery: u64, where its last intact record ends
  kCtlCutBytes,             // recovery: u64, bytes after that which are not part of the trail
  kCtlKeyId,                // 16 bytes, the signing key's id
  kCtlSignature,            // 64 bytes, Ed25519; always the last field
};

// A view: `value` must stay valid until the event is pushed (try_push copies it).
struct Field {
  FieldTag tag;
  std::string_view value;
};

struct Event {
  EventType type;
  uint64_t session_id;
  uint32_t sequence;  // per session, from 0
  uint64_t time_ns;   // CLOCK_REALTIME
  std::span<const Field> fields;
};

using ChainHash = std::array<uint8_t, limits::chain_hash_bytes>;

std::string_view event_type_name(EventType type);  // "session_start", ...; "unknown" otherwise
std::string_view field_tag_name(FieldTag tag);     // "client_address", ...; "" when unknown
uint64_t realtime_now_ns();

// Bytes of the record before its chain hash, or 0 when the event cannot be encoded
// (a value longer than u32, more than record_field_count_max fields, or a record that would
// exceed record_bytes_max).
[[nodiscard]] size_t record_body_bytes(const Event& event);
// Writes exactly record_body_bytes(event) bytes; the length word already counts the hash that
// the flusher appends. `out.size()` must equal record_body_bytes(event).
void encode_record_body(const Event& event, std::span<std::byte> out);

// A decoded record whose field values point into the bytes passed to decode_*: valid while the
// caller keeps those bytes alive and unchanged.
struct RecordView {
  EventType type{};
  uint64_t time_ns = 0;
  uint64_t session_id = 0;
  uint32_t sequence = 0;
  uint16_t field_count = 0;
  std::span<const std::byte> field_bytes;  // already checked to hold exactly field_count fields
  std::span<const std::byte> body;         // the record without its chain hash
  ChainHash stored_hash{};                 // zeros when decoded from a body (ring entry)

  template <class F>
  void for_each_field(F&& on_field) const {
    size_t at = 0;
    for (uint16_t i = 0; i < field_count; ++i) {
      Field field = field_at(at);
      on_field(field);
    }
  }
  // First value of `tag`, or an empty view.
  std::string_view first(FieldTag tag) const;

 private:
  Field field_at(size_t& at) const;
};

// A whole record as stored in a segment (the length word covers the bytes passed). Errors name
// what is wrong with the framing; they never look at the chain hash.
[[nodiscard]] Result<RecordView> decode_record(std::span<const std::byte> record);
// A record body without hash, as the ring carries it.
[[nodiscard]] Result<RecordView> decode_record_body(std::span<const std::byte> body);

// An owned copy, for readers that outlive the segment buffer.
struct StoredField {
  FieldTag tag;
  std::string value;
  bool operator==(const StoredField&) const = default;
};

struct StoredEvent {
  EventType type{};
  uint64_t session_id = 0;
  uint32_t sequence = 0;
  uint64_t time_ns = 0;
  std::vector<StoredField> fields;

  std::string_view first(FieldTag tag) const;  // empty when absent
  std::vector<std::string_view> all(FieldTag tag) const;
  bool operator==(const StoredEvent&) const = default;
};

StoredEvent to_stored(const RecordView& view);

// Statement text ready for a record: cut to `text_bytes_max` at a UTF-8 boundary when longer,
// and then carrying a kTextBytes field with the full size. fields() views into this object and
// into the original text: valid while both live, hence not copyable.
class RecordText {
 public:
  explicit RecordText(std::string_view text, size_t text_bytes_max = limits::record_text_bytes_max);
  RecordText(const RecordText&) = delete;
  RecordText& operator=(const RecordText&) = delete;

  std::string_view text() const { return fields_[0].value; }
  bool truncated() const { return field_count_ == 2; }
  size_t full_bytes() const { return full_bytes_; }
  // kText, then kTextBytes when truncated.
  std::span<const Field> fields() const { return {fields_.data(), field_count_}; }

 private:
  std::array<Field, 2> fields_{};
  size_t field_count_ = 1;
  size_t full_bytes_ = 0;
  std::array<char, 24> digits_{};
};

}  // namespace gh::rec

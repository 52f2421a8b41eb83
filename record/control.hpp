// Trail control records (format version 2): seals, checkpoints and recovery records, their
// fixed field layout, their Ed25519 signatures, and the header digest they are bound to.
// Pure functions over bytes; no I/O, no threads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "record/event.hpp"
#include "record/keys.hpp"
#include "record/merkle.hpp"

namespace gh::rec {

// Every field of the three control record types (record/FORMAT.md, "Control records"). Which ones
// a type carries, and in which order, is fixed; decode_control refuses anything else.
struct ControlRecord {
  EventType type = EventType::kCheckpoint;  // kSeal, kCheckpoint or kRecovery
  uint64_t time_ns = 0;
  uint32_t number = 0;  // checkpoints: per-shard checkpoint number (the record's sequence)
  uint16_t shard = 0;
  uint64_t segment = 0;      // the segment holding this record
  ChainHash header_digest{};  // SHA-256 of that segment's header
  // Seal and checkpoint: records before this one in its segment. Recovery: intact records of the
  // previous segment.
  uint64_t records = 0;
  ChainHash last_hash{};       // chain hash of the last of those records (or the segment link)
  MerkleHash merkle_root{};    // over the chain hashes of those records
  bool heartbeat = false;      // checkpoint only
  ChainHash previous_header_digest{};  // recovery only
  uint64_t end_offset = 0;             // recovery only
  uint64_t cut_bytes = 0;              // recovery only
  std::string reason;                  // recovery only
  KeyId key_id{};
  Signature signature{};
};

// The record body (no chain hash) of `record`, signed with `key` (key_id and signature are taken
// from the key and the signing).
[[nodiscard]] Result<std::vector<std::byte>> encode_control(ControlRecord record, const NodeKey& key);

// Strict: exactly the type's fields in the type's order with their fixed sizes, session id 0.
[[nodiscard]] Result<ControlRecord> decode_control(const RecordView& view);

// The bytes an Ed25519 signature of a control record covers: "GHTRAIL\0", u16 version 2, then the
// record body up to (not including) the signature value, which is the body's last 64 bytes.
std::vector<std::byte> control_signed_message(std::span<const std::byte> body);
// Whether the signature in `body` (a control record body) verifies with `public_key`.
bool control_signature_valid(std::span<const std::byte> body, const PublicKey& public_key);

// Bytes of a control record of `type` on disk, chain hash included (`reason_bytes`: recovery).
size_t control_record_bytes(EventType type, size_t reason_bytes = 0);

ChainHash sha256(std::span<const std::byte> bytes);

// A signed control record that has reached the disk (fdatasync done): a line for the anchor file.
struct AnchorRecord {
  uint16_t shard = 0;
  uint64_t segment = 0;
  uint64_t index = 0;  // within the segment
  EventType type = EventType::kCheckpoint;
  uint64_t time_ns = 0;
  std::vector<std::byte> record;  // body and chain hash, as in the segment
};

// One line of the anchor file (record/FORMAT.md, "Anchor file"): a JSON object naming the node,
// shard, segment and record index, with the record's bytes (body and chain hash) in base64.
std::string format_anchor_line(const AnchorRecord& anchor, std::string_view node_id);

struct AnchorLine {
  std::string node_id;
  AnchorRecord anchor;
};
[[nodiscard]] Result<AnchorLine> parse_anchor_line(std::string_view line);

}  // namespace gh::rec

// Trail control records (format version 2): seals, checkpoints and recovery records, their
// fixed field layout, their Ed25519 signatures, and the header digest they are bound to.
// Pure functions over bytes; no I/O, no threads.
#include "record/control.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/base64.hpp"

#include "core/assert.hpp"
#include "record/le.hpp"
#include "record/segment.hpp"

namespace gh::rec {

namespace {

using Tag = FieldTag;

// The fields of each type, in order (record/FORMAT.md, "Control records").
constexpr Tag kSealLayout[] = {Tag::kCtlShard,    Tag::kCtlSegment,    Tag::kCtlHeaderDigest,
                               Tag::kCtlRecords,  Tag::kCtlLastHash,   Tag::kCtlMerkleRoot,
                               Tag::kCtlKeyId,    Tag::kCtlSignature};
constexpr Tag kCheckpointLayout[] = {Tag::kCtlShard,      Tag::kCtlSegment,    Tag::kCtlHeaderDigest,
                                     Tag::kCtlRecords,    Tag::kCtlLastHash,   Tag::kCtlMerkleRoot,
                                     Tag::kCtlHeartbeat,  Tag::kCtlKeyId,      Tag::kCtlSignature};
constexpr Tag kRecoveryLayout[] = {
    Tag::kCtlShard,      Tag::kCtlSegment,   Tag::kCtlHeaderDigest, Tag::kCtlPreviousHeaderDigest,
    Tag::kCtlRecords,    Tag::kCtlLastHash,  Tag::kCtlMerkleRoot,   Tag::kCtlEndOffset,
    Tag::kCtlCutBytes,   Tag::kReason,       Tag::kCtlKeyId,        Tag::kCtlSignature};

std::span<const Tag> layout_of(EventType type) {
  switch (type) {
    case EventType::kSeal:
      return kSealLayout;
    case EventType::kCheckpoint:
      return kCheckpointLayout;
    case EventType::kRecovery:
      return kRecoveryLayout;
    default:
      return {};
  }
}

// Fixed size of a binary field; 0 for text (the recovery reason).
size_t field_size(Tag tag) {
  switch (tag) {
    case Tag::kCtlShard:
      return 2;
    case Tag::kCtlSegment:
    case Tag::kCtlRecords:
    case Tag::kCtlEndOffset:
    case Tag::kCtlCutBytes:
      return 8;
    case Tag::kCtlHeaderDigest:
    case Tag::kCtlPreviousHeaderDigest:
    case Tag::kCtlLastHash:
    case Tag::kCtlMerkleRoot:
      return limits::chain_hash_bytes;
    case Tag::kCtlHeartbeat:
      return 1;
    case Tag::kCtlKeyId:
      return limits::key_id_bytes;
    case Tag::kCtlSignature:
      return limits::signature_bytes;
    default:
      return 0;
  }
}

constexpr size_t kReasonBytesMax = 512;

std::string_view view_of(const void* p, size_t n) {
  return std::string_view(static_cast<const char*>(p), n);
}

}  // namespace

ChainHash sha256(std::span<const std::byte> bytes) {
  ChainHash out{};
  unsigned int length = 0;
  GH_ASSERT(EVP_Digest(bytes.data(), bytes.size(), out.data(), &length, EVP_sha256(), nullptr) == 1);
  return out;
}

size_t control_record_bytes(EventType type, size_t reason_bytes) {
  size_t bytes = limits::record_prefix_bytes + limits::chain_hash_bytes;
  for (const Tag tag : layout_of(type)) {
    bytes += limits::field_header_bytes +
             (tag == Tag::kReason ? std::min(reason_bytes, kReasonBytesMax) : field_size(tag));
  }
  return bytes;
}

std::vector<std::byte> control_signed_message(std::span<const std::byte> body) {
  GH_ASSERT(body.size() >= limits::signature_bytes);
  std::vector<std::byte> message(kSegmentMagic.size() + 2 + body.size() - limits::signature_bytes);
  std::memcpy(message.data(), kSegmentMagic.data(), kSegmentMagic.size());
  le::store<uint16_t>(message.data() + kSegmentMagic.size(), kFormatVersion);
  std::memcpy(message.data() + kSegmentMagic.size() + 2, body.data(),
              body.size() - limits::signature_bytes);
  return message;
}

bool control_signature_valid(std::span<const std::byte> body, const PublicKey& public_key) {
  if (body.size() < limits::record_prefix_bytes + limits::signature_bytes) return false;
  Signature signature{};
  std::memcpy(signature.data(), body.data() + body.size() - signature.size(), signature.size());
  return verify_ed25519(public_key, control_signed_message(body), signature);
}

Result<std::vector<std::byte>> encode_control(ControlRecord r, const NodeKey& key) {
  const std::span<const Tag> layout = layout_of(r.type);
  GH_ASSERT(!layout.empty());
  if (r.reason.size() > kReasonBytesMax) r.reason.resize(kReasonBytesMax);
  r.key_id = key.id();
  r.signature = {};
  std::byte shard[2], segment[8], records[8], end_offset[8], cut_bytes[8];
  le::store<uint16_t>(shard, r.shard);
  le::store<uint64_t>(segment, r.segment);
  le::store<uint64_t>(records, r.records);
  le::store<uint64_t>(end_offset, r.end_offset);
  le::store<uint64_t>(cut_bytes, r.cut_bytes);
  const uint8_t heartbeat = r.heartbeat ? 1 : 0;
  std::vector<Field> fields;
  for (const Tag tag : layout) {
    std::string_view value;
    switch (tag) {
      case Tag::kCtlShard: value = view_of(shard, 2); break;
      case Tag::kCtlSegment: value = view_of(segment, 8); break;
      case Tag::kCtlHeaderDigest: value = view_of(r.header_digest.data(), 32); break;
      case Tag::kCtlPreviousHeaderDigest: value = view_of(r.previous_header_digest.data(), 32); break;
      case Tag::kCtlRecords: value = view_of(records, 8); break;
      case Tag::kCtlLastHash: value = view_of(r.last_hash.data(), 32); break;
      case Tag::kCtlMerkleRoot: value = view_of(r.merkle_root.data(), 32); break;
      case Tag::kCtlHeartbeat: value = view_of(&heartbeat, 1); break;
      case Tag::kCtlEndOffset: value = view_of(end_offset, 8); break;
      case Tag::kCtlCutBytes: value = view_of(cut_bytes, 8); break;
      case Tag::kReason: value = r.reason; break;
      case Tag::kCtlKeyId: value = view_of(r.key_id.data(), r.key_id.size()); break;
      case Tag::kCtlSignature: value = view_of(r.signature.data(), r.signature.size()); break;
      default: GH_ASSERT(false);
    }
    fields.push_back(Field{tag, value});
  }
  const uint32_t sequence = r.type == EventType::kCheckpoint ? r.number : 0;
  const Event event{r.type, 0, sequence, r.time_ns, fields};
  const size_t bytes = record_body_bytes(event);
  GH_ASSERT(bytes > 0);
  std::vector<std::byte> body(bytes);
  encode_record_body(event, body);
  auto signature = key.sign(control_signed_message(body));
  if (!signature) return std::unexpected(signature.error());
  std::memcpy(body.data() + body.size() - signature->size(), signature->data(), signature->size());
  return body;
}

Result<ControlRecord> decode_control(const RecordView& view) {
  const std::span<const Tag> layout = layout_of(view.type);
  if (layout.empty()) return fail(fmt::format("record type {} is not a control record", static_cast<unsigned>(view.type)));
  if (view.session_id != 0) return fail("a control record must have session id 0");
  if (view.field_count != layout.size()) {
    return fail(fmt::format("{} record has {} fields, expected {}", event_type_name(view.type),
                            view.field_count, layout.size()));
  }
  ControlRecord r;
  r.type = view.type;
  r.time_ns = view.time_ns;
  r.number = view.type == EventType::kCheckpoint ? view.sequence : 0;
  if (view.type != EventType::kCheckpoint && view.sequence != 0) {
    return fail(fmt::format("{} record has sequence {}, expected 0", event_type_name(view.type),
                            view.sequence));
  }
  size_t i = 0;
  std::optional<std::string> error;
  view.for_each_field([&](const Field& f) {
    if (error) return;
    const Tag want = layout[i++];
    if (f.tag != want) {
      error = fmt::format("field {} has tag {}, expected {} ({})", i - 1,
                          static_cast<unsigned>(f.tag), static_cast<unsigned>(want),
                          field_tag_name(want));
      return;
    }
    const size_t size = field_size(want);
    if (size != 0 && f.value.size() != size) {
      error = fmt::format("field {} is {} bytes, expected {}", field_tag_name(want), f.value.size(),
                          size);
      return;
    }
    const auto* p = reinterpret_cast<const std::byte*>(f.value.data());
    switch (want) {
      case Tag::kCtlShard: r.shard = le::load<uint16_t>(p); break;
      case Tag::kCtlSegment: r.segment = le::load<uint64_t>(p); break;
      case Tag::kCtlHeaderDigest: std::memcpy(r.header_digest.data(), p, 32); break;
      case Tag::kCtlPreviousHeaderDigest: std::memcpy(r.previous_header_digest.data(), p, 32); break;
      case Tag::kCtlRecords: r.records = le::load<uint64_t>(p); break;
      case Tag::kCtlLastHash: std::memcpy(r.last_hash.data(), p, 32); break;
      case Tag::kCtlMerkleRoot: std::memcpy(r.merkle_root.data(), p, 32); break;
      case Tag::kCtlHeartbeat:
        if (f.value[0] > 1) error = "heartbeat flag is neither 0 nor 1";
        r.heartbeat = f.value[0] == 1;
        break;
      case Tag::kCtlEndOffset: r.end_offset = le::load<uint64_t>(p); break;
      case Tag::kCtlCutBytes: r.cut_bytes = le::load<uint64_t>(p); break;
      case Tag::kReason:
        if (f.value.size() > kReasonBytesMax) error = "recovery reason is too long";
        r.reason = f.value;
        break;
      case Tag::kCtlKeyId: std::memcpy(r.key_id.data(), p, r.key_id.size()); break;
      case Tag::kCtlSignature: std::memcpy(r.signature.data(), p, r.signature.size()); break;
      default: break;
    }
  });
  if (error) return fail(fmt::format("malformed {} record: {}", event_type_name(view.type), *error));
  return r;
}

std::string format_anchor_line(const AnchorRecord& a, std::string_view node_id) {
  const nlohmann::json line = {
      {"node_id", node_id},
      {"shard", a.shard},
      {"segment", a.segment},
      {"record", a.index},
      {"type", event_type_name(a.type)},
      {"time_ns", a.time_ns},
      {"bytes", base64_encode(view_of(a.record.data(), a.record.size()))},
  };
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<AnchorLine> parse_anchor_line(std::string_view text) {
  if (text.size() > limits::anchor_line_bytes_max) {
    return fail(fmt::format("line of {} bytes is longer than {}", text.size(),
                            limits::anchor_line_bytes_max));
  }
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return fail("not a JSON object");
  const auto number = [&](const char* name, uint64_t max) -> std::optional<uint64_t> {
    const auto it = j.find(name);
    if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
    const uint64_t v = it->get<uint64_t>();
    return v <= max ? std::optional<uint64_t>(v) : std::nullopt;
  };
  const auto node = j.find("node_id");
  const auto bytes = j.find("bytes");
  const auto shard = number("shard", UINT16_MAX);
  const auto segment = number("segment", UINT64_MAX);
  const auto index = number("record", UINT64_MAX);
  if (node == j.end() || !node->is_string() || bytes == j.end() || !bytes->is_string() || !shard ||
      !segment || !index) {
    return fail("expected node_id, shard, segment, record and bytes");
  }
  auto raw = base64_decode(bytes->get<std::string>());
  if (!raw) return fail("bytes is not base64");
  AnchorLine out;
  out.node_id = node->get<std::string>();
  out.anchor.shard = static_cast<uint16_t>(*shard);
  out.anchor.segment = *segment;
  out.anchor.index = *index;
  out.anchor.record.resize(raw->size());
  if (!raw->empty()) std::memcpy(out.anchor.record.data(), raw->data(), raw->size());
  auto view = decode_record(out.anchor.record);
  if (!view) return fail("bytes: " + view.error().message);
  if (!is_control_type(view->type)) {
    return fail(fmt::format("bytes hold a {} record, not a control record",
                            event_type_name(view->type)));
  }
  out.anchor.type = view->type;
  out.anchor.time_ns = view->time_ns;
  return out;
}

}  // namespace gh::rec

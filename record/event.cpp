// The audit event model and its record encoding (record/FORMAT.md, "Record").
// Pure functions over bytes: no I/O, no threads, no protocol knowledge.
#include "record/event.hpp"

#include <fmt/format.h>
#include <time.h>

#include <charconv>
#include <cstring>

#include "core/assert.hpp"
#include "record/le.hpp"

namespace gh::rec {

std::string_view event_type_name(EventType type) {
  switch (type) {
    case EventType::kSessionStart:
      return "session_start";
    case EventType::kStatement:
      return "statement";
    case EventType::kCompletion:
      return "completion";
    case EventType::kError:
      return "error";
    case EventType::kSessionEnd:
      return "session_end";
    case EventType::kAuthFailure:
      return "auth_failure";
    case EventType::kNotice:
      return "notice";
    case EventType::kMaskedRow:
      return "masked_row";
    case EventType::kResultRow:
      return "result_row";
    case EventType::kExecute:
      return "execute";
    case EventType::kOutput:
      return "output";
    case EventType::kFileOperation:
      return "file_operation";
    case EventType::kInput:
      return "input";
    case EventType::kTerminal:
      return "terminal";
    case EventType::kReview:
      return "review";
    case EventType::kForwardData:
      return "forward_data";
    case EventType::kSeal:
      return "seal";
    case EventType::kCheckpoint:
      return "checkpoint";
    case EventType::kRecovery:
      return "recovery";
    case EventType::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::string_view field_tag_name(FieldTag tag) {
  switch (tag) {
    case FieldTag::kProtocol:
      return "protocol";
    case FieldTag::kConnection:
      return "connection";
    case FieldTag::kClientAddress:
      return "client_address";
    case FieldTag::kChainMember:
      return "chain_member";
    case FieldTag::kGroup:
      return "group";
    case FieldTag::kTokenId:
      return "token_id";
    case FieldTag::kIssuer:
      return "issuer";
    case FieldTag::kStatementKind:
      return "statement_kind";
    case FieldTag::kText:
      return "text";
    case FieldTag::kTag:
      return "tag";
    case FieldTag::kSqlState:
      return "sqlstate";
    case FieldTag::kMessage:
      return "message";
    case FieldTag::kOrigin:
      return "origin";
    case FieldTag::kReason:
      return "reason";
    case FieldTag::kUser:
      return "user";
    case FieldTag::kDatabase:
      return "database";
    case FieldTag::kTextBytes:
      return "text_bytes";
    case FieldTag::kPortal:
      return "portal";
    case FieldTag::kStatementName:
      return "statement_name";
    case FieldTag::kParameter:
      return "parameter";
    case FieldTag::kParameterSizes:
      return "parameter_sizes";
    case FieldTag::kParameterFormats:
      return "parameter_formats";
    case FieldTag::kRule:
      return "rule";
    case FieldTag::kStream:
      return "stream";
    case FieldTag::kChannel:
      return "channel";
    case FieldTag::kFileOperation:
      return "file_operation";
    case FieldTag::kPath:
      return "path";
    case FieldTag::kTargetPath:
      return "target_path";
    case FieldTag::kOpenFlags:
      return "open_flags";
    case FieldTag::kBytesRead:
      return "bytes_read";
    case FieldTag::kBytesWritten:
      return "bytes_written";
    case FieldTag::kEntries:
      return "entries";
    case FieldTag::kFileStatus:
      return "file_status";
    case FieldTag::kRequest:
      return "request";
    case FieldTag::kTerminalType:
      return "terminal_type";
    case FieldTag::kColumns:
      return "columns";
    case FieldTag::kRows:
      return "rows";
    case FieldTag::kReviewId:
      return "review_id";
    case FieldTag::kStatementHash:
      return "statement_hash";
    case FieldTag::kApprover:
      return "approver";
    case FieldTag::kResultRows:
      return "result_rows";
    case FieldTag::kResultBytes:
      return "result_bytes";
    case FieldTag::kResultRowsRecorded:
      return "result_rows_recorded";
    case FieldTag::kResultRowsCut:
      return "result_rows_cut";
    case FieldTag::kOriginator:
      return "originator";
    case FieldTag::kDirection:
      return "direction";
    case FieldTag::kBytesToTarget:
      return "bytes_to_target";
    case FieldTag::kBytesFromTarget:
      return "bytes_from_target";
    case FieldTag::kResultColumns:
      return "result_columns";
    case FieldTag::kCtlShard:
      return "shard";
    case FieldTag::kCtlSegment:
      return "segment";
    case FieldTag::kCtlHeaderDigest:
      return "header_digest";
    case FieldTag::kCtlRecords:
      return "records";
    case FieldTag::kCtlLastHash:
      return "last_hash";
    case FieldTag::kCtlMerkleRoot:
      return "merkle_root";
    case FieldTag::kCtlHeartbeat:
      return "heartbeat";
    case FieldTag::kCtlPreviousHeaderDigest:
      return "previous_header_digest";
    case FieldTag::kCtlEndOffset:
      return "end_offset";
    case FieldTag::kCtlCutBytes:
      return "cut_bytes";
    case FieldTag::kCtlKeyId:
      return "key_id";
    case FieldTag::kCtlSignature:
      return "signature";
    case FieldTag::kClaim:
      return "claim";
    case FieldTag::kTokenLineage:
      return "token_lineage";
    case FieldTag::kAction:
      return "action";
    case FieldTag::kOutcome:
      return "outcome";
    case FieldTag::kHttpStatus:
      return "http_status";
    case FieldTag::kDetail:
      return "detail";
  }
  return {};
}

uint64_t realtime_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

size_t record_body_bytes(const Event& event) {
  if (event.fields.size() > limits::record_field_count_max) return 0;
  size_t bytes = limits::record_prefix_bytes;
  for (const Field& field : event.fields) {
    // Checked one by one so that the sum cannot overflow before the comparison.
    if (field.value.size() > limits::record_bytes_max) return 0;
    bytes += limits::field_header_bytes + field.value.size();
    if (bytes + limits::chain_hash_bytes > limits::record_bytes_max) return 0;
  }
  return bytes;
}

void encode_record_body(const Event& event, std::span<std::byte> out) {
  const size_t body_bytes = out.size();
  GH_DASSERT(body_bytes == record_body_bytes(event));
  std::byte* p = out.data();
  le::store<uint32_t>(p, static_cast<uint32_t>(body_bytes + limits::chain_hash_bytes));
  p[4] = static_cast<std::byte>(event.type);
  le::store<uint64_t>(p + 5, event.time_ns);
  le::store<uint64_t>(p + 13, event.session_id);
  le::store<uint32_t>(p + 21, event.sequence);
  le::store<uint16_t>(p + 25, static_cast<uint16_t>(event.fields.size()));
  p += limits::record_prefix_bytes;
  for (const Field& field : event.fields) {
    le::store<uint16_t>(p, static_cast<uint16_t>(field.tag));
    le::store<uint32_t>(p + 2, static_cast<uint32_t>(field.value.size()));
    if (!field.value.empty()) std::memcpy(p + 6, field.value.data(), field.value.size());
    p += limits::field_header_bytes + field.value.size();
  }
  GH_ASSERT(p == out.data() + body_bytes);
}

Field RecordView::field_at(size_t& at) const {
  const std::byte* p = field_bytes.data() + at;
  const auto tag = static_cast<FieldTag>(le::load<uint16_t>(p));
  const uint32_t length = le::load<uint32_t>(p + 2);
  at += limits::field_header_bytes + length;
  return Field{tag, std::string_view(reinterpret_cast<const char*>(p + 6), length)};
}

std::string_view RecordView::first(FieldTag tag) const {
  std::string_view found;
  bool seen = false;
  for_each_field([&](const Field& field) {
    if (!seen && field.tag == tag) {
      found = field.value;
      seen = true;
    }
  });
  return found;
}

namespace {

// `body` is the record without hash; `declared` is the record's length word.
Result<RecordView> decode_common(std::span<const std::byte> body, uint32_t declared,
                                 size_t expected_declared) {
  if (declared != expected_declared) {
    return fail(fmt::format("record length word {} does not match the {} bytes framed", declared,
                            expected_declared));
  }
  RecordView view;
  view.body = body;
  const std::byte* p = body.data();
  view.type = static_cast<EventType>(p[4]);
  if (static_cast<uint8_t>(view.type) == 0) return fail("record type 0 is not valid");
  view.time_ns = le::load<uint64_t>(p + 5);
  view.session_id = le::load<uint64_t>(p + 13);
  view.sequence = le::load<uint32_t>(p + 21);
  view.field_count = le::load<uint16_t>(p + 25);
  if (view.field_count > limits::record_field_count_max) {
    return fail(fmt::format("record has {} fields, more than {}", view.field_count,
                            limits::record_field_count_max));
  }
  view.field_bytes = body.subspan(limits::record_prefix_bytes);
  size_t at = 0;
  for (uint16_t i = 0; i < view.field_count; ++i) {
    if (view.field_bytes.size() - at < limits::field_header_bytes) {
      return fail(fmt::format("field {} header runs past the record end", i));
    }
    const uint16_t tag = le::load<uint16_t>(view.field_bytes.data() + at);
    if (tag == 0) return fail(fmt::format("field {} has tag 0", i));
    const uint32_t length = le::load<uint32_t>(view.field_bytes.data() + at + 2);
    at += limits::field_header_bytes;
    if (view.field_bytes.size() - at < length) {
      return fail(fmt::format("field {} value of {} bytes runs past the record end", i, length));
    }
    at += length;
  }
  if (at != view.field_bytes.size()) {
    return fail(fmt::format("{} bytes after the last field", view.field_bytes.size() - at));
  }
  return view;
}

}  // namespace

Result<RecordView> decode_record(std::span<const std::byte> record) {
  if (record.size() < limits::record_bytes_min) {
    return fail(fmt::format("record of {} bytes is shorter than the minimum {}", record.size(),
                            limits::record_bytes_min));
  }
  if (record.size() > limits::record_bytes_max) {
    return fail(fmt::format("record of {} bytes is longer than the maximum {}", record.size(),
                            limits::record_bytes_max));
  }
  const size_t body_bytes = record.size() - limits::chain_hash_bytes;
  auto view =
      decode_common(record.first(body_bytes), le::load<uint32_t>(record.data()), record.size());
  if (!view) return view;
  std::memcpy(view->stored_hash.data(), record.data() + body_bytes, limits::chain_hash_bytes);
  return view;
}

Result<RecordView> decode_record_body(std::span<const std::byte> body) {
  if (body.size() < limits::record_prefix_bytes ||
      body.size() + limits::chain_hash_bytes > limits::record_bytes_max) {
    return fail(fmt::format("record body of {} bytes is out of bounds", body.size()));
  }
  return decode_common(body, le::load<uint32_t>(body.data()),
                       body.size() + limits::chain_hash_bytes);
}

std::string_view StoredEvent::first(FieldTag tag) const {
  for (const StoredField& field : fields) {
    if (field.tag == tag) return field.value;
  }
  return {};
}

std::vector<std::string_view> StoredEvent::all(FieldTag tag) const {
  std::vector<std::string_view> values;
  for (const StoredField& field : fields) {
    if (field.tag == tag) values.push_back(field.value);
  }
  return values;
}

StoredEvent to_stored(const RecordView& view) {
  StoredEvent event;
  event.type = view.type;
  event.session_id = view.session_id;
  event.sequence = view.sequence;
  event.time_ns = view.time_ns;
  event.fields.reserve(view.field_count);
  view.for_each_field([&](const Field& field) {
    event.fields.push_back({field.tag, std::string(field.value)});
  });
  return event;
}

RecordText::RecordText(std::string_view text, size_t text_bytes_max) : full_bytes_(text.size()) {
  if (text.size() <= text_bytes_max) {
    fields_[0] = Field{FieldTag::kText, text};
    return;
  }
  // Back off continuation bytes (10xxxxxx) so the cut never splits a UTF-8 sequence; at most
  // three, so that bytes which are not UTF-8 at all still cut close to the limit.
  size_t cut = text_bytes_max;
  for (int i = 0; i < 3 && cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80; ++i) {
    --cut;
  }
  fields_[0] = Field{FieldTag::kText, text.substr(0, cut)};
  auto [end, ec] = std::to_chars(digits_.data(), digits_.data() + digits_.size(), text.size());
  GH_ASSERT(ec == std::errc());
  fields_[1] = Field{FieldTag::kTextBytes,
                     std::string_view(digits_.data(), static_cast<size_t>(end - digits_.data()))};
  field_count_ = 2;
}

}  // namespace gh::rec

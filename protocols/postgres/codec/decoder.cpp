// Frame and body validation for the PostgreSQL protocol 3.0 frontend and backend decoders.
// Must not depend on I/O, sessions, policy or allocation; every read goes through wire::Reader.
#include "protocols/postgres/codec/decoder.hpp"

#include <array>

#include "core/assert.hpp"

namespace gh::pg {
namespace {

using wire::Reader;

// Which limit caps a message type's length field.
enum class Cap : uint8_t { kFixed, kMessage, kSmall, kAuth, kParameterStatus };

struct Rule {
  bool known = false;
  uint32_t length_min = 0;  // smallest valid length field (self included) for this type
  Cap cap = Cap::kFixed;    // kFixed: the length must equal length_min
};

struct TypeRule {
  char type;
  uint32_t length_min;
  Cap cap;
};

// Minimum lengths follow from each layout in Message Formats: 4 for the length itself, 1 per
// String (its NUL), 2 per Int16, 4 per Int32.
constexpr TypeRule kFrontendTypes[] = {
    {'Q', 4 + 1, Cap::kMessage},                  // Query: String
    {'P', 4 + 1 + 1 + 2, Cap::kMessage},          // Parse: 2 Strings, Int16 count
    {'B', 4 + 1 + 1 + 2 + 2 + 2, Cap::kMessage},  // Bind: 2 Strings, 3 Int16 counts
    {'E', 4 + 1 + 4, Cap::kSmall},                // Execute: String, Int32
    {'D', 4 + 1 + 1, Cap::kSmall},                // Describe: Byte1, String
    {'C', 4 + 1 + 1, Cap::kSmall},                // Close: Byte1, String
    {'S', 4, Cap::kFixed},                        // Sync
    {'H', 4, Cap::kFixed},                        // Flush
    {'X', 4, Cap::kFixed},                        // Terminate
    {'d', 4, Cap::kMessage},                      // CopyData
    {'c', 4, Cap::kFixed},                        // CopyDone
    {'f', 4 + 1, Cap::kSmall},                    // CopyFail: String
    {'p', 4, Cap::kAuth},                         // PasswordMessage and the SASL/GSS responses
    {'F', 4 + 4 + 2 + 2 + 2, Cap::kMessage},      // FunctionCall
};

constexpr TypeRule kBackendTypes[] = {
    {'R', 4 + 4, Cap::kAuth},                   // Authentication*: Int32 code
    {'K', kBackendKeyDataLength, Cap::kFixed},  // BackendKeyData (3.0): 2 Int32
    {'S', 4 + 1 + 1, Cap::kParameterStatus},    // ParameterStatus: 2 Strings
    {'Z', 4 + 1, Cap::kFixed},                  // ReadyForQuery: Byte1
    {'T', 4 + 2, Cap::kMessage},                // RowDescription: Int16 count
    {'D', 4 + 2, Cap::kMessage},                // DataRow: Int16 count
    {'C', 4 + 1, Cap::kSmall},                  // CommandComplete: String
    {'E', 4 + 1, Cap::kMessage},                // ErrorResponse: terminator
    {'N', 4 + 1, Cap::kMessage},                // NoticeResponse: terminator
    {'A', 4 + 4 + 1 + 1, Cap::kSmall},          // NotificationResponse
    {'G', 4 + 1 + 2, Cap::kSmall},              // CopyInResponse: Int8, Int16 count
    {'H', 4 + 1 + 2, Cap::kSmall},              // CopyOutResponse
    {'W', 4 + 1 + 2, Cap::kSmall},              // CopyBothResponse
    {'d', 4, Cap::kMessage},                    // CopyData
    {'c', 4, Cap::kFixed},                      // CopyDone
    {'I', 4, Cap::kFixed},                      // EmptyQueryResponse
    {'1', 4, Cap::kFixed},                      // ParseComplete
    {'2', 4, Cap::kFixed},                      // BindComplete
    {'3', 4, Cap::kFixed},                      // CloseComplete
    {'n', 4, Cap::kFixed},                      // NoData
    {'s', 4, Cap::kFixed},                      // PortalSuspended
    {'t', 4 + 2, Cap::kMessage},                // ParameterDescription: Int16 count
    {'v', 4 + 4 + 4, Cap::kSmall},              // NegotiateProtocolVersion: 2 Int32
    {'V', 4 + 4, Cap::kMessage},                // FunctionCallResponse: Int32 length
};

// One entry per possible type byte, so the header check is a single load.
template <size_t N>
constexpr std::array<Rule, 256> make_rules(const TypeRule (&types)[N]) {
  std::array<Rule, 256> rules{};
  for (const TypeRule& t : types) {
    rules[static_cast<uint8_t>(t.type)] = Rule{true, t.length_min, t.cap};
  }
  return rules;
}

constexpr std::array<Rule, 256> kFrontendRules = make_rules(kFrontendTypes);
constexpr std::array<Rule, 256> kBackendRules = make_rules(kBackendTypes);

Rule frontend_rule(char type) { return kFrontendRules[static_cast<uint8_t>(type)]; }
Rule backend_rule(char type) { return kBackendRules[static_cast<uint8_t>(type)]; }

uint32_t length_max(const Rule& r, const DecoderLimits& limits) {
  switch (r.cap) {
    case Cap::kFixed:
      return r.length_min;
    case Cap::kMessage:
      return limits.message_bytes_max;
    case Cap::kSmall:
      return limits.small_message_bytes_max;
    case Cap::kAuth:
      return limits.auth_bytes_max;
    case Cap::kParameterStatus:
      return limits.parameter_status_bytes_max;
  }
  return r.length_min;
}

HeaderDecoded decode_header(Bytes in, const DecoderLimits& limits, Rule (*rule_for)(char)) {
  HeaderDecoded out;
  if (in.size() < kTypedHeaderBytes) return out;  // kNeedMore
  out.header.type = static_cast<char>(std::to_integer<uint8_t>(in[0]));
  out.header.length = wire::load_u32(in.data() + 1);
  out.status = Status::kError;
  const Rule r = rule_for(out.header.type);
  if (!r.known) {
    out.error = DecodeError::kUnknownType;
  } else if (out.header.length < r.length_min ||
             (r.cap == Cap::kFixed && out.header.length != r.length_min)) {
    out.error = DecodeError::kBadLength;
  } else if (out.header.length > length_max(r, limits)) {
    // Includes lengths of 2 GiB and more (negative as an Int32): refused before any waiting.
    out.error = DecodeError::kTooLarge;
  } else {
    out.status = Status::kMessage;
  }
  return out;
}

// ---- body parsers. Each reads the whole body and requires it to end exactly where the message
// format ends (Message Formats: "the message end can be found without reference to the byte
// count", which is what lets us check the count against the contents).

bool is_format_code(int16_t f) { return f == 0 || f == 1; }

// count Int16 format codes, each 0 or 1.
bool read_format_codes(Reader& r, uint16_t count, Bytes& out) {
  if (!r.bytes(size_t{count} * 2, out)) return false;
  Bytes rest = out;
  int16_t f = 0;
  while (next_i16(rest, f)) {
    if (!is_format_code(f)) return false;
  }
  return true;
}

// count values (Int32 length or -1, then bytes); out spans all of them.
bool read_values(Reader& r, uint16_t count, Bytes& out) {
  Bytes start = r.rest();
  Bytes rest = start;
  ColumnValue v;
  for (uint32_t i = 0; i < count; ++i) {
    if (!next_column_value(rest, v)) return false;
  }
  const size_t used = start.size() - rest.size();
  return r.bytes(used, out);
}

bool parse(Bytes body, Query& m) {
  Reader r(body);
  return r.cstr(m.sql) && r.empty();
}

bool parse(Bytes body, Parse& m) {
  Reader r(body);
  return r.cstr(m.statement) && r.cstr(m.query) && r.u16(m.parameter_type_count) &&
         r.bytes(size_t{m.parameter_type_count} * 4, m.parameter_types) && r.empty();
}

bool parse(Bytes body, Bind& m) {
  Reader r(body);
  if (!r.cstr(m.portal) || !r.cstr(m.statement) || !r.u16(m.parameter_format_count) ||
      !read_format_codes(r, m.parameter_format_count, m.parameter_formats) ||
      !r.u16(m.parameter_count)) {
    return false;
  }
  // Bind: zero format codes, one for all, or exactly one per parameter.
  if (m.parameter_format_count > 1 && m.parameter_format_count != m.parameter_count) return false;
  return read_values(r, m.parameter_count, m.parameters) && r.u16(m.result_format_count) &&
         read_format_codes(r, m.result_format_count, m.result_formats) && r.empty();
}

bool parse_kind(Reader& r, char& kind) {
  uint8_t k = 0;
  if (!r.u8(k) || (k != 'S' && k != 'P')) return false;
  kind = static_cast<char>(k);
  return true;
}

bool parse(Bytes body, Describe& m) {
  Reader r(body);
  return parse_kind(r, m.kind) && r.cstr(m.name) && r.empty();
}

bool parse(Bytes body, Close& m) {
  Reader r(body);
  return parse_kind(r, m.kind) && r.cstr(m.name) && r.empty();
}

bool parse(Bytes body, Execute& m) {
  Reader r(body);
  return r.cstr(m.portal) && r.i32(m.max_rows) && r.empty();
}

bool parse(Bytes body, CopyData& m) {
  m.data = body;
  return true;
}

bool parse(Bytes body, CopyFail& m) {
  Reader r(body);
  return r.cstr(m.message) && r.empty();
}

bool parse(Bytes body, PasswordMessage& m) {
  m.body = body;
  return true;
}

bool parse(Bytes body, FunctionCall& m) {
  Reader r(body);
  uint16_t format_count = 0;
  uint16_t argument_count = 0;
  Bytes formats;
  Bytes arguments;
  int16_t result_format = 0;
  if (!r.i32(m.function_oid) || !r.u16(format_count) ||
      !read_format_codes(r, format_count, formats) || !r.u16(argument_count)) {
    return false;
  }
  if (format_count > 1 && format_count != argument_count) return false;
  if (!read_values(r, argument_count, arguments) || !r.i16(result_format) ||
      !is_format_code(result_format) || !r.empty()) {
    return false;
  }
  m.body = body;
  return true;
}

// Messages without a body: the header rule already fixed their length at 4.
template <class M>
bool parse_empty(Bytes body, M&) {
  return body.empty();
}
bool parse(Bytes body, Sync& m) { return parse_empty(body, m); }
bool parse(Bytes body, Flush& m) { return parse_empty(body, m); }
bool parse(Bytes body, Terminate& m) { return parse_empty(body, m); }
bool parse(Bytes body, CopyDone& m) { return parse_empty(body, m); }
bool parse(Bytes body, EmptyQueryResponse& m) { return parse_empty(body, m); }
bool parse(Bytes body, ParseComplete& m) { return parse_empty(body, m); }
bool parse(Bytes body, BindComplete& m) { return parse_empty(body, m); }
bool parse(Bytes body, CloseComplete& m) { return parse_empty(body, m); }
bool parse(Bytes body, NoData& m) { return parse_empty(body, m); }
bool parse(Bytes body, PortalSuspended& m) { return parse_empty(body, m); }

bool parse(Bytes body, Authentication& m) {
  Reader r(body);
  if (!r.i32(m.code)) return false;
  m.data = r.rest();
  switch (m.code) {
    case Authentication::kOk:
    case Authentication::kKerberosV5:
    case Authentication::kCleartextPassword:
    case Authentication::kGss:
    case Authentication::kSspi:
      return m.data.empty();
    case Authentication::kMd5Password:
      return m.data.size() == 4;  // the salt
    case Authentication::kSasl: {
      // One or more mechanism names, then an empty String as the last byte.
      Bytes rest = m.data;
      std::string_view name;
      uint32_t names = 0;
      while (next_nonempty_cstr(rest, name)) ++names;
      return names > 0 && rest.size() == 1 && rest[0] == std::byte{0};
    }
    case Authentication::kGssContinue:
    case Authentication::kSaslContinue:
    case Authentication::kSaslFinal:
      return true;
    default:
      // Removed methods (crypt 4, SCM credentials 6) and unknown codes.
      return false;
  }
}

bool parse(Bytes body, BackendKeyData& m) {
  Reader r(body);
  return r.i32(m.process_id) && r.i32(m.secret_key) && r.empty();
}

bool parse(Bytes body, ParameterStatus& m) {
  Reader r(body);
  return r.cstr(m.name) && r.cstr(m.value) && r.empty();
}

bool parse(Bytes body, ReadyForQuery& m) {
  Reader r(body);
  uint8_t s = 0;
  if (!r.u8(s) || !r.empty()) return false;
  m.status = static_cast<char>(s);
  return m.status == ReadyForQuery::kIdle || m.status == ReadyForQuery::kInTransaction ||
         m.status == ReadyForQuery::kFailedTransaction;
}

bool parse(Bytes body, RowDescription& m) {
  Reader r(body);
  if (!r.u16(m.field_count)) return false;
  m.fields = r.rest();
  Bytes rest = m.fields;
  FieldDescription f;
  for (uint32_t i = 0; i < m.field_count; ++i) {
    if (!next_field_description(rest, f) || !is_format_code(f.format)) return false;
  }
  return rest.empty();
}

bool parse(Bytes body, DataRow& m) {
  Reader r(body);
  return r.u16(m.column_count) && read_values(r, m.column_count, m.columns) && r.empty();
}

bool parse(Bytes body, CommandComplete& m) {
  Reader r(body);
  return r.cstr(m.tag) && r.empty();
}

// (Byte1 code, String)* then one zero byte that must be the body's last byte.
bool parse_field_list(Bytes body, Bytes& fields) {
  Bytes rest = body;
  ErrorField f;
  while (next_error_field(rest, f)) {
  }
  if (rest.size() != 1 || rest[0] != std::byte{0}) return false;
  fields = body;
  return true;
}

bool parse(Bytes body, ErrorResponse& m) { return parse_field_list(body, m.fields); }
bool parse(Bytes body, NoticeResponse& m) { return parse_field_list(body, m.fields); }

bool parse(Bytes body, NotificationResponse& m) {
  Reader r(body);
  return r.i32(m.process_id) && r.cstr(m.channel) && r.cstr(m.payload) && r.empty();
}

template <class M>
bool parse_copy_response(Bytes body, M& m) {
  Reader r(body);
  return r.i8(m.format) && is_format_code(m.format) && r.u16(m.column_count) &&
         read_format_codes(r, m.column_count, m.column_formats) && r.empty();
}
bool parse(Bytes body, CopyInResponse& m) { return parse_copy_response(body, m); }
bool parse(Bytes body, CopyOutResponse& m) { return parse_copy_response(body, m); }
bool parse(Bytes body, CopyBothResponse& m) { return parse_copy_response(body, m); }

bool parse(Bytes body, ParameterDescription& m) {
  Reader r(body);
  return r.u16(m.count) && r.bytes(size_t{m.count} * 4, m.type_oids) && r.empty();
}

bool parse(Bytes body, NegotiateProtocolVersion& m) {
  Reader r(body);
  int32_t count = 0;
  if (!r.i32(m.newest_minor) || !r.i32(count) || count < 0) return false;
  m.option_count = static_cast<uint32_t>(count);
  m.options = r.rest();
  // Each option takes at least one byte, so this loop is bounded by the body size.
  Bytes rest = m.options;
  std::string_view option;
  for (uint32_t i = 0; i < m.option_count; ++i) {
    if (!next_cstr(rest, option)) return false;
  }
  return rest.empty();
}

bool parse(Bytes body, FunctionCallResponse& m) {
  Bytes rest = body;
  ColumnValue v;
  if (!next_column_value(rest, v) || !rest.empty()) return false;
  m.body = body;
  if (v) {
    m.result = wire::as_bytes(*v);
  } else {
    m.result = std::nullopt;
  }
  return true;
}

template <class M, class Variant>
bool parse_into(Bytes body, Variant& out) {
  M m{};
  if (!parse(body, m)) return false;
  out = m;
  return true;
}

bool parse_frontend_body(char type, Bytes body, FrontendMessage& out) {
  switch (type) {
    case Query::kType:
      return parse_into<Query>(body, out);
    case Parse::kType:
      return parse_into<Parse>(body, out);
    case Bind::kType:
      return parse_into<Bind>(body, out);
    case Execute::kType:
      return parse_into<Execute>(body, out);
    case Describe::kType:
      return parse_into<Describe>(body, out);
    case Close::kType:
      return parse_into<Close>(body, out);
    case Sync::kType:
      return parse_into<Sync>(body, out);
    case Flush::kType:
      return parse_into<Flush>(body, out);
    case Terminate::kType:
      return parse_into<Terminate>(body, out);
    case CopyData::kType:
      return parse_into<CopyData>(body, out);
    case CopyDone::kType:
      return parse_into<CopyDone>(body, out);
    case CopyFail::kType:
      return parse_into<CopyFail>(body, out);
    case PasswordMessage::kType:
      return parse_into<PasswordMessage>(body, out);
    case FunctionCall::kType:
      return parse_into<FunctionCall>(body, out);
    default:
      return false;  // the header rule refused unknown types already
  }
}

bool parse_backend_body(char type, Bytes body, BackendMessage& out) {
  switch (type) {
    case Authentication::kType:
      return parse_into<Authentication>(body, out);
    case BackendKeyData::kType:
      return parse_into<BackendKeyData>(body, out);
    case ParameterStatus::kType:
      return parse_into<ParameterStatus>(body, out);
    case ReadyForQuery::kType:
      return parse_into<ReadyForQuery>(body, out);
    case RowDescription::kType:
      return parse_into<RowDescription>(body, out);
    case DataRow::kType:
      return parse_into<DataRow>(body, out);
    case CommandComplete::kType:
      return parse_into<CommandComplete>(body, out);
    case ErrorResponse::kType:
      return parse_into<ErrorResponse>(body, out);
    case NoticeResponse::kType:
      return parse_into<NoticeResponse>(body, out);
    case NotificationResponse::kType:
      return parse_into<NotificationResponse>(body, out);
    case CopyInResponse::kType:
      return parse_into<CopyInResponse>(body, out);
    case CopyOutResponse::kType:
      return parse_into<CopyOutResponse>(body, out);
    case CopyBothResponse::kType:
      return parse_into<CopyBothResponse>(body, out);
    case CopyData::kType:
      return parse_into<CopyData>(body, out);
    case CopyDone::kType:
      return parse_into<CopyDone>(body, out);
    case EmptyQueryResponse::kType:
      return parse_into<EmptyQueryResponse>(body, out);
    case ParseComplete::kType:
      return parse_into<ParseComplete>(body, out);
    case BindComplete::kType:
      return parse_into<BindComplete>(body, out);
    case CloseComplete::kType:
      return parse_into<CloseComplete>(body, out);
    case NoData::kType:
      return parse_into<NoData>(body, out);
    case ParameterDescription::kType:
      return parse_into<ParameterDescription>(body, out);
    case PortalSuspended::kType:
      return parse_into<PortalSuspended>(body, out);
    case NegotiateProtocolVersion::kType:
      return parse_into<NegotiateProtocolVersion>(body, out);
    case FunctionCallResponse::kType:
      return parse_into<FunctionCallResponse>(body, out);
    default:
      return false;
  }
}

// Shared frame logic for both directions: header, completeness, body.
template <class Decoded, class Message>
Decoded decode_frame(Bytes in, const DecoderLimits& limits, Rule (*rule_for)(char),
                     bool (*parse_body)(char, Bytes, Message&)) {
  Decoded out;
  const HeaderDecoded h = decode_header(in, limits, rule_for);
  if (h.status != Status::kMessage) {
    out.status = h.status;
    out.error = h.error;
    return out;
  }
  // The header rule bounds length by message_bytes_max < 2^31, so this cannot overflow.
  const size_t frame_bytes = size_t{h.header.length} + 1;
  out.frame_bytes = frame_bytes;
  if (in.size() < frame_bytes) return out;  // kNeedMore
  if (!parse_body(h.header.type, in.subspan(kTypedHeaderBytes, frame_bytes - kTypedHeaderBytes),
                  out.message)) {
    out.status = Status::kError;
    out.error = DecodeError::kMalformed;
    return out;
  }
  out.status = Status::kMessage;
  out.consumed = frame_bytes;
  GH_DASSERT(out.consumed <= in.size());
  return out;
}

}  // namespace

const char* describe(DecodeError error) {
  switch (error) {
    case DecodeError::kNone:
      return "no error";
    case DecodeError::kBadLength:
      return "invalid message length";
    case DecodeError::kTooLarge:
      return "message length exceeds limit";
    case DecodeError::kMalformed:
      return "malformed message body";
    case DecodeError::kUnknownType:
      return "unknown message type";
    case DecodeError::kUnsupportedProtocol:
      return "unsupported protocol version";
  }
  return "unknown decode error";
}

HeaderDecoded decode_frontend_header(Bytes in, const DecoderLimits& limits) {
  return decode_header(in, limits, frontend_rule);
}

HeaderDecoded decode_backend_header(Bytes in, const DecoderLimits& limits) {
  return decode_header(in, limits, backend_rule);
}

FrontendDecoded decode_frontend_frame(Bytes frame, const DecoderLimits& limits) {
  return decode_frame<FrontendDecoded, FrontendMessage>(frame, limits, frontend_rule,
                                                        parse_frontend_body);
}

BackendDecoded decode_backend_frame(Bytes frame, const DecoderLimits& limits) {
  return decode_frame<BackendDecoded, BackendMessage>(frame, limits, backend_rule,
                                                      parse_backend_body);
}

FrontendDecoder::FrontendDecoder(DecoderLimits limits) : limits_(limits) {
  GH_ASSERT(limits_valid(limits_));
}

FrontendDecoded FrontendDecoder::next(Bytes in) {
  if (startup_phase_) return next_startup(in);
  return decode_frontend_frame(in, limits_);
}

// Startup-phase packets have no type byte: Int32 length (self included), Int32 version or request
// code, then the body (Message Flow, Start-up; Message Formats, StartupMessage and friends).
FrontendDecoded FrontendDecoder::next_startup(Bytes in) {
  FrontendDecoded out;
  if (in.size() < kLengthFieldBytes) return out;  // kNeedMore
  const uint32_t length = wire::load_u32(in.data());
  if (length < kStartupHeaderBytes) {
    out.status = Status::kError;
    out.error = DecodeError::kBadLength;
    return out;
  }
  if (length > limits_.startup_bytes_max) {
    out.status = Status::kError;
    out.error = DecodeError::kTooLarge;
    return out;
  }
  out.frame_bytes = length;
  if (in.size() < length) return out;  // kNeedMore

  Reader r(in.subspan(kLengthFieldBytes, length - kLengthFieldBytes));
  uint32_t code = 0;
  const bool have_code = r.u32(code);
  GH_DASSERT(have_code);  // length >= 8 was checked above
  (void)have_code;

  out.status = Status::kError;
  out.error = DecodeError::kMalformed;
  switch (code) {
    case kSslRequestCode:
      if (!r.empty()) return out;
      out.message = SslRequest{};
      break;
    case kGssEncRequestCode:
      if (!r.empty()) return out;
      out.message = GssEncRequest{};
      break;
    case kCancelRequestCode: {
      // Protocol 3.0 form only: process ID and a 4-byte secret key, 16 bytes in all.
      CancelRequest c;
      if (length != kCancelRequestBytes || !r.i32(c.process_id) || !r.i32(c.secret_key)) {
        return out;
      }
      out.message = c;
      break;
    }
    default: {
      if ((code >> 16) != 3) {
        out.error = DecodeError::kUnsupportedProtocol;
        return out;
      }
      // (name String, value String)* then a zero byte, which must be the packet's last byte.
      StartupMessage s;
      s.protocol_version = code;
      Bytes rest = r.rest();
      StartupParameter p;
      while (next_startup_parameter(rest, p)) {
      }
      if (rest.size() != 1 || rest[0] != std::byte{0}) return out;
      s.parameters_raw = wire::as_chars(r.rest());
      out.message = s;
      startup_phase_ = false;
      break;
    }
  }
  out.status = Status::kMessage;
  out.error = DecodeError::kNone;
  out.consumed = length;
  return out;
}

BackendDecoder::BackendDecoder(DecoderLimits limits) : limits_(limits) {
  GH_ASSERT(limits_valid(limits_));
}

BackendDecoded BackendDecoder::next(Bytes in) { return decode_backend_frame(in, limits_); }

EncryptionAnswer decode_encryption_answer(Bytes in) {
  EncryptionAnswer out;
  if (in.empty()) return out;  // kNeedMore
  const char c = static_cast<char>(std::to_integer<uint8_t>(in[0]));
  switch (c) {
    case 'S':
    case 'N':
    case 'G':
      out.status = Status::kMessage;
      out.consumed = 1;
      out.answer = c;
      return out;
    case 'E':
      out.status = Status::kMessage;
      out.answer = c;
      return out;
    default:
      out.status = Status::kError;
      out.error = DecodeError::kMalformed;
      return out;
  }
}

}  // namespace gh::pg

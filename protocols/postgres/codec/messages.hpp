// Typed PostgreSQL protocol 3.0 messages as views into the caller's bytes, the decoder limits, and
// readers for the lists inside message bodies. Must not depend on I/O, sessions, policy or
// allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string_view>
#include <variant>

#include "protocols/postgres/codec/wire.hpp"

namespace gh::pg {

// Lifetime: every std::string_view and Bytes in the messages below points into the input span
// that was passed to the decoder. A message stays valid exactly as long as the caller keeps that
// input alive and unchanged; copying a message copies the views, not the bytes.
using Bytes = std::span<const std::byte>;

// ---------------------------------------------------------------------------------------------
// Limits. One place for every bound the decoders enforce (STYLE.md, Limits and memory). A length
// field is checked against these before anything else, so a bogus length can at most make the
// caller wait for (or stream) that many bytes, never allocate them up front.

struct DecoderLimits {
  // Untyped startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).
  // PostgreSQL refuses longer ones too (MAX_STARTUP_PACKET_LENGTH in pqcomm.h).
  uint32_t startup_bytes_max = 10000;
  // Messages that carry data or SQL: Query, Parse, Bind, CopyData, FunctionCall, DataRow,
  // RowDescription, ErrorResponse, NoticeResponse, ParameterDescription, FunctionCallResponse.
  // PostgreSQL's own cap on such messages is PQ_LARGE_MESSAGE_LIMIT (1 GiB - 1).
  uint32_t message_bytes_max = 1u << 30;
  // Authentication exchanges: PasswordMessage-family 'p' (client) and Authentication 'R'
  // (server). A JWT sent as the password must fit. PostgreSQL uses PG_MAX_AUTH_TOKEN_LENGTH.
  uint32_t auth_bytes_max = 65535;
  // Control messages with a name or a short text: Describe, Close, Execute, CopyFail (client);
  // CommandComplete, NotificationResponse, Copy*Response, NegotiateProtocolVersion (server).
  // PostgreSQL reads the client ones with PQ_SMALL_MESSAGE_LIMIT (10000).
  uint32_t small_message_bytes_max = 10000;
  // ParameterStatus: some reported settings (search_path since PostgreSQL 18) have no fixed
  // bound, so they get more room than the small control messages.
  uint32_t parameter_status_bytes_max = 65535;
};

// Sizes fixed by the protocol (Message Formats), as the length field counts them (self included).
inline constexpr uint32_t kLengthFieldBytes = 4;
inline constexpr uint32_t kTypedHeaderBytes = 5;       // Byte1 type + Int32 length
inline constexpr uint32_t kStartupHeaderBytes = 8;     // Int32 length + Int32 code or version
inline constexpr uint32_t kCancelRequestBytes = 16;    // protocol 3.0 form
inline constexpr uint32_t kBackendKeyDataLength = 12;  // Int32 length + pid + key
// The length field is an Int32 on the wire.
inline constexpr uint32_t kLengthFieldMax = 0x7fffffffu;

constexpr bool limits_valid(const DecoderLimits& l) {
  return l.startup_bytes_max >= kCancelRequestBytes && l.small_message_bytes_max >= 64 &&
         l.auth_bytes_max >= 64 && l.parameter_status_bytes_max >= l.small_message_bytes_max &&
         l.startup_bytes_max <= l.message_bytes_max &&
         l.small_message_bytes_max <= l.message_bytes_max &&
         l.auth_bytes_max <= l.message_bytes_max &&
         l.parameter_status_bytes_max <= l.message_bytes_max &&
         // frame_bytes = length + 1 must stay below the Int32 range.
         l.message_bytes_max < kLengthFieldMax;
}
static_assert(limits_valid(DecoderLimits{}));
static_assert(DecoderLimits{}.startup_bytes_max == 10000, "PostgreSQL's MAX_STARTUP_PACKET_LENGTH");
static_assert(DecoderLimits{}.small_message_bytes_max <= DecoderLimits{}.auth_bytes_max,
              "auth exchanges may be larger than control messages, never the reverse");
static_assert(DecoderLimits{}.auth_bytes_max < DecoderLimits{}.message_bytes_max);

// ---------------------------------------------------------------------------------------------
// Protocol version numbers and the special request codes of untyped packets (Message Formats:
// StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).

constexpr uint32_t protocol_version(uint16_t major, uint16_t minor) {
  return (static_cast<uint32_t>(major) << 16) | minor;
}
inline constexpr uint32_t kProtocolVersion30 = protocol_version(3, 0);  // 196608
inline constexpr uint32_t kCancelRequestCode = protocol_version(1234, 5678);
inline constexpr uint32_t kSslRequestCode = protocol_version(1234, 5679);
inline constexpr uint32_t kGssEncRequestCode = protocol_version(1234, 5680);

// ---------------------------------------------------------------------------------------------
// Elements of the lists inside message bodies, and the step functions that read them.
// A step function reads one element from the front of `rest`, advances `rest` past it and returns
// true; at the end of the list, or if the element does not fit, it returns false and leaves
// `rest` untouched. The decoders validate a body by running these same steps over it.

struct StartupParameter {
  std::string_view name;
  std::string_view value;
};
// One RowDescription field (Message Formats: RowDescription).
struct FieldDescription {
  std::string_view name;
  int32_t table_oid = 0;
  int16_t column_attr = 0;
  int32_t type_oid = 0;
  int16_t type_size = 0;
  int32_t type_modifier = -1;
  int16_t format = 0;  // 0 text, 1 binary
};
// A DataRow column, Bind parameter or function argument: std::nullopt is SQL NULL (length -1).
// The value may hold binary data (format 1); string_view is only its container.
using ColumnValue = std::optional<std::string_view>;
// One ErrorResponse / NoticeResponse field (Error and Notice Message Fields).
struct ErrorField {
  char code = 0;
  std::string_view value;
};

// name NUL value NUL; false at the empty name that ends the list.
bool next_startup_parameter(Bytes& rest, StartupParameter& out);
bool next_field_description(Bytes& rest, FieldDescription& out);
// Int32 length (-1 for NULL) then that many bytes; false on any other negative length.
bool next_column_value(Bytes& rest, ColumnValue& out);
// Byte1 code (non-zero) then a String; false at the zero byte that ends the list.
bool next_error_field(Bytes& rest, ErrorField& out);
// A String; next_nonempty_cstr also stops (false) at an empty string, a list terminator.
bool next_cstr(Bytes& rest, std::string_view& out);
bool next_nonempty_cstr(Bytes& rest, std::string_view& out);
bool next_i16(Bytes& rest, int16_t& out);
bool next_i32(Bytes& rest, int32_t& out);

// A forward range over a list in a message body: at most `count` elements, each read with Parse.
// On a body the decoder accepted, it yields exactly the elements the message announces. On a
// hand-built message it stops at the first element that does not parse; it never reads outside
// the body. Use in a range-for; the yielded values are views with the message's lifetime.
template <class T, bool (*Parse)(Bytes&, T&)>
class ParsedRange {
 public:
  class Iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;

    Iterator() = default;
    Iterator(Bytes rest, uint32_t left) : rest_(rest), left_(left) { advance(); }

    const T& operator*() const { return value_; }
    const T* operator->() const { return &value_; }
    Iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    bool operator==(std::default_sentinel_t) const { return done_; }

   private:
    void advance() {
      if (left_ == 0 || !Parse(rest_, value_)) {
        done_ = true;
        return;
      }
      done_ = false;
      --left_;
    }

    Bytes rest_;
    uint32_t left_ = 0;
    T value_{};
    bool done_ = true;
  };

  ParsedRange(Bytes body, uint32_t count) : body_(body), count_(count) {}
  Iterator begin() const { return Iterator(body_, count_); }
  std::default_sentinel_t end() const { return {}; }

 private:
  Bytes body_;
  uint32_t count_;
};

// Unbounded lists (terminated in the bytes themselves) use this count.
inline constexpr uint32_t kUntilTerminator = 0xffffffffu;

using StartupParameterRange = ParsedRange<StartupParameter, next_startup_parameter>;
using FieldDescriptionRange = ParsedRange<FieldDescription, next_field_description>;
using ColumnValueRange = ParsedRange<ColumnValue, next_column_value>;
using ErrorFieldRange = ParsedRange<ErrorField, next_error_field>;
using CStringRange = ParsedRange<std::string_view, next_cstr>;
using NonEmptyCStringRange = ParsedRange<std::string_view, next_nonempty_cstr>;
using Int16Range = ParsedRange<int16_t, next_i16>;
using Int32Range = ParsedRange<int32_t, next_i32>;

// =============================================================================================
// Frontend (client -> server) messages. Message Formats, entries marked (F).

// Untyped startup-phase packets.
struct SslRequest {
  static constexpr const char* kName = "SSLRequest";
};
struct GssEncRequest {
  static constexpr const char* kName = "GSSENCRequest";
};
// Sent on a new connection; protocol 3.0 form with a 4-byte secret key (16 bytes in all).
struct CancelRequest {
  static constexpr const char* kName = "CancelRequest";
  int32_t process_id = 0;
  int32_t secret_key = 0;
};
struct StartupMessage {
  static constexpr const char* kName = "StartupMessage";
  uint32_t protocol_version = kProtocolVersion30;  // major in the high 16 bits, minor in the low
  // The parameter list as on the wire: (name NUL value NUL)* NUL, final terminator included.
  std::string_view parameters_raw;

  uint16_t major_version() const { return static_cast<uint16_t>(protocol_version >> 16); }
  uint16_t minor_version() const { return static_cast<uint16_t>(protocol_version & 0xffff); }
  StartupParameterRange parameters() const {
    return StartupParameterRange(wire::as_bytes(parameters_raw), kUntilTerminator);
  }
  // The value of the first parameter with this name (names are case sensitive, "user" etc.).
  std::optional<std::string_view> parameter(std::string_view name) const;
  // Calls f(name, value) for each parameter in wire order.
  template <class F>
  void for_each_parameter(F&& f) const {
    for (const StartupParameter& p : parameters()) f(p.name, p.value);
  }
};

// Typed messages. kType is the type byte on the wire.
struct Query {
  static constexpr char kType = 'Q';
  static constexpr const char* kName = "Query";
  std::string_view sql;
};
struct Parse {
  static constexpr char kType = 'P';
  static constexpr const char* kName = "Parse";
  std::string_view statement;  // empty: the unnamed statement
  std::string_view query;
  uint16_t parameter_type_count = 0;
  Bytes parameter_types;  // parameter_type_count Int32 type OIDs (0: unspecified)
  Int32Range parameter_type_range() const {
    return Int32Range(parameter_types, parameter_type_count);
  }
};
struct Bind {
  static constexpr char kType = 'B';
  static constexpr const char* kName = "Bind";
  std::string_view portal;              // empty: the unnamed portal
  std::string_view statement;           // empty: the unnamed statement
  uint16_t parameter_format_count = 0;  // 0 (all text), 1 (applies to all) or parameter_count
  Bytes parameter_formats;              // Int16 each
  uint16_t parameter_count = 0;
  Bytes parameters;  // Int32 length (-1 NULL) + bytes, parameter_count times
  uint16_t result_format_count = 0;
  Bytes result_formats;  // Int16 each

  Int16Range parameter_format_range() const {
    return Int16Range(parameter_formats, parameter_format_count);
  }
  ColumnValueRange parameter_range() const { return ColumnValueRange(parameters, parameter_count); }
  Int16Range result_format_range() const { return Int16Range(result_formats, result_format_count); }
  // The format code that applies to parameter i, following the 0 / 1 / n rule of Bind.
  int16_t parameter_format(uint16_t i) const;
};
struct Describe {
  static constexpr char kType = 'D';
  static constexpr const char* kName = "Describe";
  static constexpr char kStatement = 'S';
  static constexpr char kPortal = 'P';
  char kind = kStatement;
  std::string_view name;
};
struct Execute {
  static constexpr char kType = 'E';
  static constexpr const char* kName = "Execute";
  std::string_view portal;
  int32_t max_rows = 0;  // 0: no limit
};
struct Close {
  static constexpr char kType = 'C';
  static constexpr const char* kName = "Close";
  static constexpr char kStatement = 'S';
  static constexpr char kPortal = 'P';
  char kind = kStatement;
  std::string_view name;
};
struct Sync {
  static constexpr char kType = 'S';
  static constexpr const char* kName = "Sync";
};
struct Flush {
  static constexpr char kType = 'H';
  static constexpr const char* kName = "Flush";
};
struct Terminate {
  static constexpr char kType = 'X';
  static constexpr const char* kName = "Terminate";
};
// CopyData and CopyDone have the same type byte and layout in both directions (Message Formats,
// marked F & B), so FrontendMessage and BackendMessage share these two types; the decoder a message
// came from tells its direction.
struct CopyData {
  static constexpr char kType = 'd';
  static constexpr const char* kName = "CopyData";
  Bytes data;
};
struct CopyDone {
  static constexpr char kType = 'c';
  static constexpr const char* kName = "CopyDone";
};
struct CopyFail {
  static constexpr char kType = 'f';
  static constexpr const char* kName = "CopyFail";
  std::string_view message;
};
// 'p' is PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse; which one depends on
// the authentication request the server sent (Message Formats, PasswordMessage). Only the session
// knows that, so the decoder checks the size and hands over the body; parse it with the helpers.
struct PasswordMessage {
  static constexpr char kType = 'p';
  static constexpr const char* kName = "PasswordMessage";
  Bytes body;  // everything after the length field
};
struct SaslInitialResponse {
  std::string_view mechanism;
  std::optional<Bytes> data;  // std::nullopt when the client sent length -1 (no initial response)
};
// PasswordMessage: the password (cleartext, or "md5" + hex digest), NUL-terminated, the NUL being
// the body's last byte. std::nullopt if the body is not exactly that.
std::optional<std::string_view> parse_password(Bytes body);
// SASLInitialResponse: mechanism String, Int32 length (-1: none), data. std::nullopt if malformed.
std::optional<SaslInitialResponse> parse_sasl_initial_response(Bytes body);
// SASLResponse and GSSResponse carry their data as the whole body.
inline Bytes parse_sasl_response(Bytes body) { return body; }

// Function call subprotocol (Message Flow, Function Call): validated, passed through as bytes.
struct FunctionCall {
  static constexpr char kType = 'F';
  static constexpr const char* kName = "FunctionCall";
  int32_t function_oid = 0;
  Bytes body;  // everything after the length field, function OID included
};

// The first alternative is what a non-kMessage decode result holds; it is Flush (and NoData for
// the backend) on purpose: both are harmless if a caller forgets to check the status.
using FrontendMessage =
    std::variant<Flush, SslRequest, GssEncRequest, CancelRequest, StartupMessage, Query, Parse,
                 Bind, Describe, Execute, Close, Sync, Terminate, CopyData, CopyDone, CopyFail,
                 PasswordMessage, FunctionCall>;

// =============================================================================================
// Backend (server -> client) messages. Message Formats, entries marked (B).

struct Authentication {
  static constexpr char kType = 'R';
  static constexpr const char* kName = "Authentication";
  static constexpr int32_t kOk = 0;
  static constexpr int32_t kKerberosV5 = 2;
  static constexpr int32_t kCleartextPassword = 3;
  static constexpr int32_t kMd5Password = 5;  // data: 4-byte salt
  static constexpr int32_t kGss = 7;
  static constexpr int32_t kGssContinue = 8;  // data: GSSAPI or SSPI token
  static constexpr int32_t kSspi = 9;
  static constexpr int32_t kSasl = 10;          // data: mechanism names, each a String, then NUL
  static constexpr int32_t kSaslContinue = 11;  // data: mechanism-specific challenge
  static constexpr int32_t kSaslFinal = 12;     // data: mechanism-specific outcome
  int32_t code = kOk;
  Bytes data;  // everything after the code

  // For kSasl: the mechanism names, in the server's order of preference.
  NonEmptyCStringRange sasl_mechanisms() const {
    return NonEmptyCStringRange(data, code == kSasl ? kUntilTerminator : 0);
  }
};
// Protocol 3.0 form: a 4-byte secret key.
struct BackendKeyData {
  static constexpr char kType = 'K';
  static constexpr const char* kName = "BackendKeyData";
  int32_t process_id = 0;
  int32_t secret_key = 0;
};
struct ParameterStatus {
  static constexpr char kType = 'S';
  static constexpr const char* kName = "ParameterStatus";
  std::string_view name;
  std::string_view value;
};
struct ReadyForQuery {
  static constexpr char kType = 'Z';
  static constexpr const char* kName = "ReadyForQuery";
  static constexpr char kIdle = 'I';
  static constexpr char kInTransaction = 'T';
  static constexpr char kFailedTransaction = 'E';
  char status = kIdle;
};
struct RowDescription {
  static constexpr char kType = 'T';
  static constexpr const char* kName = "RowDescription";
  uint16_t field_count = 0;
  Bytes fields;  // the field_count field descriptions as on the wire
  FieldDescriptionRange field_range() const { return FieldDescriptionRange(fields, field_count); }
};
struct DataRow {
  static constexpr char kType = 'D';
  static constexpr const char* kName = "DataRow";
  uint16_t column_count = 0;
  Bytes columns;  // the column_count values as on the wire (Int32 length or -1, bytes)
  ColumnValueRange value_range() const { return ColumnValueRange(columns, column_count); }
};
struct CommandComplete {
  static constexpr char kType = 'C';
  static constexpr const char* kName = "CommandComplete";
  std::string_view tag;  // e.g. "SELECT 3", "INSERT 0 1"
};

// Field type codes of ErrorResponse and NoticeResponse (Error and Notice Message Fields).
namespace error_field {
inline constexpr char kSeverity = 'S';       // localized
inline constexpr char kSeverityPlain = 'V';  // never localized (9.6+)
inline constexpr char kSqlState = 'C';
inline constexpr char kMessage = 'M';
inline constexpr char kDetail = 'D';
inline constexpr char kHint = 'H';
inline constexpr char kPosition = 'P';
inline constexpr char kInternalPosition = 'p';
inline constexpr char kInternalQuery = 'q';
inline constexpr char kWhere = 'W';
inline constexpr char kSchema = 's';
inline constexpr char kTable = 't';
inline constexpr char kColumn = 'c';
inline constexpr char kDataType = 'd';
inline constexpr char kConstraint = 'n';
inline constexpr char kFile = 'F';
inline constexpr char kLine = 'L';
inline constexpr char kRoutine = 'R';
}  // namespace error_field

// `fields` is the list as on the wire: (Byte1 code, String)* then a zero byte. Returns the first
// field with this code. Safe on any bytes: it stops at the terminator or at the first field that
// does not fit.
std::optional<std::string_view> field(Bytes fields, char code);
inline ErrorFieldRange error_field_range(Bytes fields) {
  return ErrorFieldRange(fields, kUntilTerminator);
}

struct ErrorResponse {
  static constexpr char kType = 'E';
  static constexpr const char* kName = "ErrorResponse";
  Bytes fields;  // field list including its terminating zero byte
  std::optional<std::string_view> field(char code) const { return pg::field(fields, code); }
  ErrorFieldRange field_range() const { return error_field_range(fields); }
};
struct NoticeResponse {
  static constexpr char kType = 'N';
  static constexpr const char* kName = "NoticeResponse";
  Bytes fields;  // field list including its terminating zero byte
  std::optional<std::string_view> field(char code) const { return pg::field(fields, code); }
  ErrorFieldRange field_range() const { return error_field_range(fields); }
};
struct NotificationResponse {
  static constexpr char kType = 'A';
  static constexpr const char* kName = "NotificationResponse";
  int32_t process_id = 0;
  std::string_view channel;
  std::string_view payload;
};
// CopyInResponse, CopyOutResponse and CopyBothResponse share a layout (Message Formats).
struct CopyInResponse {
  static constexpr char kType = 'G';
  static constexpr const char* kName = "CopyInResponse";
  int8_t format = 0;  // 0 text, 1 binary
  uint16_t column_count = 0;
  Bytes column_formats;  // Int16 each
  Int16Range column_format_range() const { return Int16Range(column_formats, column_count); }
};
struct CopyOutResponse {
  static constexpr char kType = 'H';
  static constexpr const char* kName = "CopyOutResponse";
  int8_t format = 0;
  uint16_t column_count = 0;
  Bytes column_formats;
  Int16Range column_format_range() const { return Int16Range(column_formats, column_count); }
};
struct CopyBothResponse {
  static constexpr char kType = 'W';
  static constexpr const char* kName = "CopyBothResponse";
  int8_t format = 0;
  uint16_t column_count = 0;
  Bytes column_formats;
  Int16Range column_format_range() const { return Int16Range(column_formats, column_count); }
};
struct EmptyQueryResponse {
  static constexpr char kType = 'I';
  static constexpr const char* kName = "EmptyQueryResponse";
};
struct ParseComplete {
  static constexpr char kType = '1';
  static constexpr const char* kName = "ParseComplete";
};
struct BindComplete {
  static constexpr char kType = '2';
  static constexpr const char* kName = "BindComplete";
};
struct CloseComplete {
  static constexpr char kType = '3';
  static constexpr const char* kName = "CloseComplete";
};
struct NoData {
  static constexpr char kType = 'n';
  static constexpr const char* kName = "NoData";
};
struct ParameterDescription {
  static constexpr char kType = 't';
  static constexpr const char* kName = "ParameterDescription";
  uint16_t count = 0;
  Bytes type_oids;  // count Int32 OIDs
  Int32Range type_oid_range() const { return Int32Range(type_oids, count); }
};
struct PortalSuspended {
  static constexpr char kType = 's';
  static constexpr const char* kName = "PortalSuspended";
};
struct NegotiateProtocolVersion {
  static constexpr char kType = 'v';
  static constexpr const char* kName = "NegotiateProtocolVersion";
  // Named after the documentation ("newest minor protocol version supported"), but PostgreSQL
  // sends the whole version number, major << 16 | minor (e.g. 196608 for 3.0); keep it raw.
  int32_t newest_minor = 0;
  uint32_t option_count = 0;  // unrecognized "_pq_." options
  Bytes options;              // option_count Strings
  CStringRange option_range() const { return CStringRange(options, option_count); }
};
struct FunctionCallResponse {
  static constexpr char kType = 'V';
  static constexpr const char* kName = "FunctionCallResponse";
  Bytes body;                   // everything after the length field
  std::optional<Bytes> result;  // std::nullopt: NULL result (length -1)
};

using BackendMessage =
    std::variant<NoData, Authentication, BackendKeyData, ParameterStatus, ReadyForQuery,
                 RowDescription, DataRow, CommandComplete, ErrorResponse, NoticeResponse,
                 NotificationResponse, CopyInResponse, CopyOutResponse, CopyBothResponse, CopyData,
                 CopyDone, EmptyQueryResponse, ParseComplete, BindComplete, CloseComplete,
                 ParameterDescription, PortalSuspended, NegotiateProtocolVersion,
                 FunctionCallResponse>;

// The protocol's name of a message ("Query", "DataRow", ...), for logs and recordings.
const char* message_name(const FrontendMessage& m);
const char* message_name(const BackendMessage& m);

}  // namespace gh::pg

// PostgreSQL protocol 3.0 encoders: each call appends one complete message to a caller-owned
// string. Must not depend on I/O, sessions or policy; the session owns the buffers and decides what
// to send.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocols/postgres/codec/messages.hpp"

namespace gh::pg {

// Builds one message at the end of `out`: begin() writes the type byte (if any) and a placeholder
// length, the put_* calls append fields in network byte order, finish() back-patches the length
// (Message Formats: "Length of message contents in bytes, including self"). A writer builds one
// message at a time; it may be reused after finish(). Sizes over the Int32 range are a programmer
// error (GH_ASSERT): callers bound what they encode.
class MessageWriter {
 public:
  explicit MessageWriter(std::string& out) : out_(out) {}
  MessageWriter(const MessageWriter&) = delete;
  MessageWriter& operator=(const MessageWriter&) = delete;

  void begin(char type);  // a typed message
  void begin_untyped();   // a startup-phase packet (StartupMessage, SSLRequest, CancelRequest...)
  void put_i8(int8_t v);
  void put_char(char c) { put_i8(static_cast<int8_t>(c)); }
  void put_i16(int16_t v);
  void put_i32(int32_t v);
  // A 16-bit count (number of fields, values, format codes); asserts it fits.
  void put_count16(size_t n);
  void put_bytes(Bytes b);
  void put_bytes(std::string_view s);
  // A String: the characters, then NUL. A String cannot hold NUL, so `s` is cut at its first NUL
  // (peer-supplied text is written safely rather than asserted on).
  void put_cstr(std::string_view s);
  // Returns the size of the finished message, type byte included.
  size_t finish();

 private:
  static constexpr size_t kNotStarted = static_cast<size_t>(-1);
  std::string& out_;
  size_t length_at_ = kNotStarted;
  bool typed_ = false;
};

// ---- backend (server -> client) messages --------------------------------------------------------

// ErrorResponse / NoticeResponse fields (Error and Notice Message Fields). The severity is written
// both as 'S' and as the non-localized 'V'; detail and hint are written only when non-empty.
struct ErrorFields {
  std::string_view severity;  // "ERROR", "FATAL", "PANIC", "WARNING", "NOTICE", ...
  std::string_view sqlstate;  // five characters, e.g. "28P01"
  std::string_view message;
  std::string_view detail = {};
  std::string_view hint = {};
};
void encode_error_response(std::string& out, const ErrorFields& fields);
void encode_notice_response(std::string& out, const ErrorFields& fields);

void encode_authentication(std::string& out, int32_t code, Bytes data = {});
void encode_authentication_ok(std::string& out);
void encode_authentication_cleartext_password(std::string& out);
void encode_authentication_md5_password(std::string& out, std::span<const std::byte, 4> salt);
void encode_authentication_sasl(std::string& out, std::span<const std::string_view> mechanisms);
void encode_authentication_sasl_continue(std::string& out, Bytes data);
void encode_authentication_sasl_final(std::string& out, Bytes data);
void encode_backend_key_data(std::string& out, int32_t process_id, int32_t secret_key);
void encode_parameter_status(std::string& out, std::string_view name, std::string_view value);
void encode_ready_for_query(std::string& out, char status);
void encode_row_description(std::string& out, std::span<const FieldDescription> fields);
void encode_data_row(std::string& out, std::span<const ColumnValue> values);
void encode_command_complete(std::string& out, std::string_view tag);
void encode_notification_response(std::string& out, int32_t process_id, std::string_view channel,
                                  std::string_view payload);
void encode_copy_in_response(std::string& out, int8_t format,
                             std::span<const int16_t> column_formats);
void encode_copy_out_response(std::string& out, int8_t format,
                              std::span<const int16_t> column_formats);
void encode_copy_both_response(std::string& out, int8_t format,
                               std::span<const int16_t> column_formats);
void encode_empty_query_response(std::string& out);
void encode_parse_complete(std::string& out);
void encode_bind_complete(std::string& out);
void encode_close_complete(std::string& out);
void encode_no_data(std::string& out);
void encode_portal_suspended(std::string& out);
void encode_parameter_description(std::string& out, std::span<const int32_t> type_oids);
// newest_version is the whole version number as PostgreSQL sends it (see NegotiateProtocolVersion).
void encode_negotiate_protocol_version(std::string& out, int32_t newest_version,
                                       std::span<const std::string_view> unrecognized_options);
void encode_function_call_response(std::string& out, std::optional<Bytes> result);
// The single, untyped byte that answers SSLRequest ('S' or 'N') and GSSENCRequest ('G' or 'N').
void encode_ssl_answer(std::string& out, bool accept);
void encode_gssenc_answer(std::string& out, bool accept);

// ---- both directions ---------------------------------------------------------------------------

void encode_copy_data(std::string& out, Bytes data);
void encode_copy_done(std::string& out);

// ---- frontend (client -> server) messages -------------------------------------------------------

void encode_startup_message(std::string& out, std::span<const StartupParameter> parameters,
                            uint32_t protocol = kProtocolVersion30);
void encode_ssl_request(std::string& out);
void encode_gssenc_request(std::string& out);
void encode_cancel_request(std::string& out, int32_t process_id, int32_t secret_key);
// PasswordMessage: a cleartext password or an "md5..." digest computed by the caller.
void encode_password_message(std::string& out, std::string_view password);
void encode_sasl_initial_response(std::string& out, std::string_view mechanism,
                                  std::optional<Bytes> data);
void encode_sasl_response(std::string& out, Bytes data);
void encode_query(std::string& out, std::string_view sql);
void encode_parse(std::string& out, std::string_view statement, std::string_view query,
                  std::span<const int32_t> parameter_types = {});
// Bind with text parameters (no format codes) and text results (no result format codes).
void encode_bind(std::string& out, std::string_view portal, std::string_view statement,
                 std::span<const ColumnValue> parameters);
void encode_describe(std::string& out, char kind, std::string_view name);
void encode_execute(std::string& out, std::string_view portal, int32_t max_rows = 0);
void encode_close(std::string& out, char kind, std::string_view name);
void encode_sync(std::string& out);
void encode_flush(std::string& out);
void encode_terminate(std::string& out);
void encode_copy_fail(std::string& out, std::string_view message);

}  // namespace gh::pg

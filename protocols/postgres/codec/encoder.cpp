// PostgreSQL protocol 3.0 message encoders over MessageWriter (Message Formats).
// Must not depend on I/O, sessions or policy; appends to caller-owned strings only.
#include "protocols/postgres/codec/encoder.hpp"

#include "core/assert.hpp"

namespace gh::pg {

void MessageWriter::begin(char type) {
  GH_ASSERT(length_at_ == kNotStarted);
  out_.push_back(type);
  typed_ = true;
  length_at_ = out_.size();
  out_.append(4, '\0');
}

void MessageWriter::begin_untyped() {
  GH_ASSERT(length_at_ == kNotStarted);
  typed_ = false;
  length_at_ = out_.size();
  out_.append(4, '\0');
}

void MessageWriter::put_i8(int8_t v) {
  GH_DASSERT(length_at_ != kNotStarted);
  out_.push_back(static_cast<char>(v));
}

void MessageWriter::put_i16(int16_t v) {
  GH_DASSERT(length_at_ != kNotStarted);
  const auto u = static_cast<uint16_t>(v);
  const char b[2] = {static_cast<char>(u >> 8), static_cast<char>(u & 0xff)};
  out_.append(b, 2);
}

void MessageWriter::put_i32(int32_t v) {
  GH_DASSERT(length_at_ != kNotStarted);
  const auto u = static_cast<uint32_t>(v);
  const char b[4] = {static_cast<char>(u >> 24), static_cast<char>((u >> 16) & 0xff),
                     static_cast<char>((u >> 8) & 0xff), static_cast<char>(u & 0xff)};
  out_.append(b, 4);
}

void MessageWriter::put_count16(size_t n) {
  GH_ASSERT(n <= 0xffff);
  put_i16(static_cast<int16_t>(static_cast<uint16_t>(n)));
}

void MessageWriter::put_bytes(Bytes b) {
  GH_DASSERT(length_at_ != kNotStarted);
  out_.append(reinterpret_cast<const char*>(b.data()), b.size());
}

void MessageWriter::put_bytes(std::string_view s) {
  GH_DASSERT(length_at_ != kNotStarted);
  out_.append(s.data(), s.size());
}

void MessageWriter::put_cstr(std::string_view s) {
  GH_DASSERT(length_at_ != kNotStarted);
  const size_t nul = s.find('\0');
  if (nul != std::string_view::npos) s = s.substr(0, nul);
  out_.append(s.data(), s.size());
  out_.push_back('\0');
}

size_t MessageWriter::finish() {
  GH_ASSERT(length_at_ != kNotStarted);
  const size_t length = out_.size() - length_at_;
  GH_ASSERT(length <= kLengthFieldMax);
  const auto u = static_cast<uint32_t>(length);
  out_[length_at_] = static_cast<char>(u >> 24);
  out_[length_at_ + 1] = static_cast<char>((u >> 16) & 0xff);
  out_[length_at_ + 2] = static_cast<char>((u >> 8) & 0xff);
  out_[length_at_ + 3] = static_cast<char>(u & 0xff);
  length_at_ = kNotStarted;
  return typed_ ? length + 1 : length;
}

namespace {

void encode_empty(std::string& out, char type) {
  MessageWriter w(out);
  w.begin(type);
  w.finish();
}

void encode_field_list(std::string& out, char type, const ErrorFields& f) {
  MessageWriter w(out);
  w.begin(type);
  w.put_char(error_field::kSeverity);
  w.put_cstr(f.severity);
  w.put_char(error_field::kSeverityPlain);
  w.put_cstr(f.severity);
  w.put_char(error_field::kSqlState);
  w.put_cstr(f.sqlstate);
  w.put_char(error_field::kMessage);
  w.put_cstr(f.message);
  if (!f.detail.empty()) {
    w.put_char(error_field::kDetail);
    w.put_cstr(f.detail);
  }
  if (!f.hint.empty()) {
    w.put_char(error_field::kHint);
    w.put_cstr(f.hint);
  }
  w.put_i8(0);
  w.finish();
}

void encode_copy_response(std::string& out, char type, int8_t format,
                          std::span<const int16_t> column_formats) {
  MessageWriter w(out);
  w.begin(type);
  w.put_i8(format);
  w.put_count16(column_formats.size());
  for (int16_t f : column_formats) w.put_i16(f);
  w.finish();
}

void put_value(MessageWriter& w, const ColumnValue& v) {
  if (!v) {
    w.put_i32(-1);
    return;
  }
  GH_ASSERT(v->size() <= kLengthFieldMax);
  w.put_i32(static_cast<int32_t>(v->size()));
  w.put_bytes(*v);
}

}  // namespace

// ---- backend
// -------------------------------------------------------------------------------------

void encode_error_response(std::string& out, const ErrorFields& fields) {
  encode_field_list(out, ErrorResponse::kType, fields);
}

void encode_notice_response(std::string& out, const ErrorFields& fields) {
  encode_field_list(out, NoticeResponse::kType, fields);
}

void encode_authentication(std::string& out, int32_t code, Bytes data) {
  MessageWriter w(out);
  w.begin(Authentication::kType);
  w.put_i32(code);
  w.put_bytes(data);
  w.finish();
}

void encode_authentication_ok(std::string& out) { encode_authentication(out, Authentication::kOk); }

void encode_authentication_cleartext_password(std::string& out) {
  encode_authentication(out, Authentication::kCleartextPassword);
}

void encode_authentication_md5_password(std::string& out, std::span<const std::byte, 4> salt) {
  encode_authentication(out, Authentication::kMd5Password, salt);
}

void encode_authentication_sasl(std::string& out, std::span<const std::string_view> mechanisms) {
  MessageWriter w(out);
  w.begin(Authentication::kType);
  w.put_i32(Authentication::kSasl);
  for (std::string_view m : mechanisms) w.put_cstr(m);
  w.put_i8(0);
  w.finish();
}

void encode_authentication_sasl_continue(std::string& out, Bytes data) {
  encode_authentication(out, Authentication::kSaslContinue, data);
}

void encode_authentication_sasl_final(std::string& out, Bytes data) {
  encode_authentication(out, Authentication::kSaslFinal, data);
}

void encode_backend_key_data(std::string& out, int32_t process_id, int32_t secret_key) {
  MessageWriter w(out);
  w.begin(BackendKeyData::kType);
  w.put_i32(process_id);
  w.put_i32(secret_key);
  w.finish();
}

void encode_parameter_status(std::string& out, std::string_view name, std::string_view value) {
  MessageWriter w(out);
  w.begin(ParameterStatus::kType);
  w.put_cstr(name);
  w.put_cstr(value);
  w.finish();
}

void encode_ready_for_query(std::string& out, char status) {
  MessageWriter w(out);
  w.begin(ReadyForQuery::kType);
  w.put_char(status);
  w.finish();
}

void encode_row_description(std::string& out, std::span<const FieldDescription> fields) {
  MessageWriter w(out);
  w.begin(RowDescription::kType);
  w.put_count16(fields.size());
  for (const FieldDescription& f : fields) {
    w.put_cstr(f.name);
    w.put_i32(f.table_oid);
    w.put_i16(f.column_attr);
    w.put_i32(f.type_oid);
    w.put_i16(f.type_size);
    w.put_i32(f.type_modifier);
    w.put_i16(f.format);
  }
  w.finish();
}

void encode_data_row(std::string& out, std::span<const ColumnValue> values) {
  MessageWriter w(out);
  w.begin(DataRow::kType);
  w.put_count16(values.size());
  for (const ColumnValue& v : values) put_value(w, v);
  w.finish();
}

void encode_command_complete(std::string& out, std::string_view tag) {
  MessageWriter w(out);
  w.begin(CommandComplete::kType);
  w.put_cstr(tag);
  w.finish();
}

void encode_notification_response(std::string& out, int32_t process_id, std::string_view channel,
                                  std::string_view payload) {
  MessageWriter w(out);
  w.begin(NotificationResponse::kType);
  w.put_i32(process_id);
  w.put_cstr(channel);
  w.put_cstr(payload);
  w.finish();
}

void encode_copy_in_response(std::string& out, int8_t format,
                             std::span<const int16_t> column_formats) {
  encode_copy_response(out, CopyInResponse::kType, format, column_formats);
}

void encode_copy_out_response(std::string& out, int8_t format,
                              std::span<const int16_t> column_formats) {
  encode_copy_response(out, CopyOutResponse::kType, format, column_formats);
}

void encode_copy_both_response(std::string& out, int8_t format,
                               std::span<const int16_t> column_formats) {
  encode_copy_response(out, CopyBothResponse::kType, format, column_formats);
}

void encode_empty_query_response(std::string& out) { encode_empty(out, EmptyQueryResponse::kType); }
void encode_parse_complete(std::string& out) { encode_empty(out, ParseComplete::kType); }
void encode_bind_complete(std::string& out) { encode_empty(out, BindComplete::kType); }
void encode_close_complete(std::string& out) { encode_empty(out, CloseComplete::kType); }
void encode_no_data(std::string& out) { encode_empty(out, NoData::kType); }
void encode_portal_suspended(std::string& out) { encode_empty(out, PortalSuspended::kType); }

void encode_parameter_description(std::string& out, std::span<const int32_t> type_oids) {
  MessageWriter w(out);
  w.begin(ParameterDescription::kType);
  w.put_count16(type_oids.size());
  for (int32_t oid : type_oids) w.put_i32(oid);
  w.finish();
}

void encode_negotiate_protocol_version(std::string& out, int32_t newest_version,
                                       std::span<const std::string_view> unrecognized_options) {
  MessageWriter w(out);
  w.begin(NegotiateProtocolVersion::kType);
  w.put_i32(newest_version);
  GH_ASSERT(unrecognized_options.size() <= kLengthFieldMax);
  w.put_i32(static_cast<int32_t>(unrecognized_options.size()));
  for (std::string_view o : unrecognized_options) w.put_cstr(o);
  w.finish();
}

void encode_function_call_response(std::string& out, std::optional<Bytes> result) {
  MessageWriter w(out);
  w.begin(FunctionCallResponse::kType);
  if (result) {
    put_value(w, wire::as_chars(*result));
  } else {
    put_value(w, std::nullopt);
  }
  w.finish();
}

void encode_ssl_answer(std::string& out, bool accept) { out.push_back(accept ? 'S' : 'N'); }
void encode_gssenc_answer(std::string& out, bool accept) { out.push_back(accept ? 'G' : 'N'); }

// ---- both directions
// -----------------------------------------------------------------------------

void encode_copy_data(std::string& out, Bytes data) {
  MessageWriter w(out);
  w.begin(CopyData::kType);
  w.put_bytes(data);
  w.finish();
}

void encode_copy_done(std::string& out) { encode_empty(out, CopyDone::kType); }

// ---- frontend
// ------------------------------------------------------------------------------------

void encode_startup_message(std::string& out, std::span<const StartupParameter> parameters,
                            uint32_t protocol) {
  MessageWriter w(out);
  w.begin_untyped();
  w.put_i32(static_cast<int32_t>(protocol));
  for (const StartupParameter& p : parameters) {
    w.put_cstr(p.name);
    w.put_cstr(p.value);
  }
  w.put_i8(0);
  w.finish();
}

namespace {
void encode_request_code(std::string& out, uint32_t code) {
  MessageWriter w(out);
  w.begin_untyped();
  w.put_i32(static_cast<int32_t>(code));
  w.finish();
}
}  // namespace

void encode_ssl_request(std::string& out) { encode_request_code(out, kSslRequestCode); }
void encode_gssenc_request(std::string& out) { encode_request_code(out, kGssEncRequestCode); }

void encode_cancel_request(std::string& out, int32_t process_id, int32_t secret_key) {
  MessageWriter w(out);
  w.begin_untyped();
  w.put_i32(static_cast<int32_t>(kCancelRequestCode));
  w.put_i32(process_id);
  w.put_i32(secret_key);
  w.finish();
}

void encode_password_message(std::string& out, std::string_view password) {
  MessageWriter w(out);
  w.begin(PasswordMessage::kType);
  w.put_cstr(password);
  w.finish();
}

void encode_sasl_initial_response(std::string& out, std::string_view mechanism,
                                  std::optional<Bytes> data) {
  MessageWriter w(out);
  w.begin(PasswordMessage::kType);
  w.put_cstr(mechanism);
  if (data) {
    put_value(w, wire::as_chars(*data));
  } else {
    put_value(w, std::nullopt);
  }
  w.finish();
}

void encode_sasl_response(std::string& out, Bytes data) {
  MessageWriter w(out);
  w.begin(PasswordMessage::kType);
  w.put_bytes(data);
  w.finish();
}

void encode_query(std::string& out, std::string_view sql) {
  MessageWriter w(out);
  w.begin(Query::kType);
  w.put_cstr(sql);
  w.finish();
}

void encode_parse(std::string& out, std::string_view statement, std::string_view query,
                  std::span<const int32_t> parameter_types) {
  MessageWriter w(out);
  w.begin(Parse::kType);
  w.put_cstr(statement);
  w.put_cstr(query);
  w.put_count16(parameter_types.size());
  for (int32_t oid : parameter_types) w.put_i32(oid);
  w.finish();
}

void encode_bind(std::string& out, std::string_view portal, std::string_view statement,
                 std::span<const ColumnValue> parameters) {
  MessageWriter w(out);
  w.begin(Bind::kType);
  w.put_cstr(portal);
  w.put_cstr(statement);
  w.put_count16(0);  // no parameter format codes: all text
  w.put_count16(parameters.size());
  for (const ColumnValue& v : parameters) put_value(w, v);
  w.put_count16(0);  // no result format codes: all text
  w.finish();
}

void encode_describe(std::string& out, char kind, std::string_view name) {
  MessageWriter w(out);
  w.begin(Describe::kType);
  w.put_char(kind);
  w.put_cstr(name);
  w.finish();
}

void encode_execute(std::string& out, std::string_view portal, int32_t max_rows) {
  MessageWriter w(out);
  w.begin(Execute::kType);
  w.put_cstr(portal);
  w.put_i32(max_rows);
  w.finish();
}

void encode_close(std::string& out, char kind, std::string_view name) {
  MessageWriter w(out);
  w.begin(Close::kType);
  w.put_char(kind);
  w.put_cstr(name);
  w.finish();
}

void encode_sync(std::string& out) { encode_empty(out, Sync::kType); }
void encode_flush(std::string& out) { encode_empty(out, Flush::kType); }
void encode_terminate(std::string& out) { encode_empty(out, Terminate::kType); }

void encode_copy_fail(std::string& out, std::string_view message) {
  MessageWriter w(out);
  w.begin(CopyFail::kType);
  w.put_cstr(message);
  w.finish();
}

}  // namespace gh::pg

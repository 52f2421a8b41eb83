// Readers for the lists inside PostgreSQL message bodies and the context-dependent 'p' helpers.
// Must not depend on I/O, sessions, policy or allocation; only the standard library and wire.hpp.
#include "protocols/postgres/codec/messages.hpp"

#include <type_traits>

namespace gh::pg {

using wire::Reader;

bool next_startup_parameter(Bytes& rest, StartupParameter& out) {
  Reader r(rest);
  StartupParameter p;
  // The list ends with an empty name (Message Formats, StartupMessage).
  if (!r.cstr(p.name) || p.name.empty() || !r.cstr(p.value)) return false;
  out = p;
  rest = r.rest();
  return true;
}

bool next_field_description(Bytes& rest, FieldDescription& out) {
  Reader r(rest);
  FieldDescription f;
  if (!r.cstr(f.name) || !r.i32(f.table_oid) || !r.i16(f.column_attr) || !r.i32(f.type_oid) ||
      !r.i16(f.type_size) || !r.i32(f.type_modifier) || !r.i16(f.format)) {
    return false;
  }
  out = f;
  rest = r.rest();
  return true;
}

bool next_column_value(Bytes& rest, ColumnValue& out) {
  Reader r(rest);
  int32_t length = 0;
  if (!r.i32(length)) return false;
  if (length == -1) {
    out = std::nullopt;
    rest = r.rest();
    return true;
  }
  // Any other negative length is malformed (Message Formats, DataRow and Bind).
  Bytes value;
  if (length < 0 || !r.bytes(static_cast<size_t>(length), value)) return false;
  out = wire::as_chars(value);
  rest = r.rest();
  return true;
}

bool next_error_field(Bytes& rest, ErrorField& out) {
  Reader r(rest);
  uint8_t code = 0;
  ErrorField f;
  if (!r.u8(code) || code == 0 || !r.cstr(f.value)) return false;
  f.code = static_cast<char>(code);
  out = f;
  rest = r.rest();
  return true;
}

bool next_cstr(Bytes& rest, std::string_view& out) {
  Reader r(rest);
  if (!r.cstr(out)) return false;
  rest = r.rest();
  return true;
}

bool next_nonempty_cstr(Bytes& rest, std::string_view& out) {
  Reader r(rest);
  std::string_view s;
  if (!r.cstr(s) || s.empty()) return false;
  out = s;
  rest = r.rest();
  return true;
}

bool next_i16(Bytes& rest, int16_t& out) {
  Reader r(rest);
  if (!r.i16(out)) return false;
  rest = r.rest();
  return true;
}

bool next_i32(Bytes& rest, int32_t& out) {
  Reader r(rest);
  if (!r.i32(out)) return false;
  rest = r.rest();
  return true;
}

std::optional<std::string_view> StartupMessage::parameter(std::string_view name) const {
  for (const StartupParameter& p : parameters()) {
    if (p.name == name) return p.value;
  }
  return std::nullopt;
}

int16_t Bind::parameter_format(uint16_t i) const {
  // Zero format codes: all text; one: it applies to every parameter; else one per parameter.
  if (parameter_format_count == 0) return 0;
  const size_t index = parameter_format_count == 1 ? 0 : i;
  if (index >= parameter_format_count || (index + 1) * 2 > parameter_formats.size()) return 0;
  return static_cast<int16_t>(wire::load_u16(parameter_formats.data() + index * 2));
}

std::optional<std::string_view> field(Bytes fields, char code) {
  for (const ErrorField& f : error_field_range(fields)) {
    if (f.code == code) return f.value;
  }
  return std::nullopt;
}

std::optional<std::string_view> parse_password(Bytes body) {
  // The NUL must be the last byte: PostgreSQL rejects a password packet whose string length
  // disagrees with the message length.
  Reader r(body);
  std::string_view password;
  if (!r.cstr(password) || !r.empty()) return std::nullopt;
  return password;
}

std::optional<SaslInitialResponse> parse_sasl_initial_response(Bytes body) {
  Reader r(body);
  SaslInitialResponse out;
  int32_t length = 0;
  if (!r.cstr(out.mechanism) || out.mechanism.empty() || !r.i32(length)) return std::nullopt;
  if (length == -1) {
    if (!r.empty()) return std::nullopt;
    return out;
  }
  Bytes data;
  if (length < 0 || !r.bytes(static_cast<size_t>(length), data) || !r.empty()) {
    return std::nullopt;
  }
  out.data = data;
  return out;
}

const char* message_name(const FrontendMessage& m) {
  return std::visit([](const auto& msg) { return std::decay_t<decltype(msg)>::kName; }, m);
}

const char* message_name(const BackendMessage& m) {
  return std::visit([](const auto& msg) { return std::decay_t<decltype(msg)>::kName; }, m);
}

}  // namespace gh::pg

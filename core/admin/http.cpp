// Plain-value HTTP requests and responses, form bodies and OAuth error bodies.
// Sans-I/O: must not depend on the HTTP library or on any protocol.
#include "core/admin/http.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace gh::admin {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> form_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= text.size()) return fail("truncated %-escape");
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return fail("malformed %-escape");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

const std::string* Request::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return &value;
  }
  return nullptr;
}

std::string Request::media_type() const {
  const std::string* value = header("Content-Type");
  if (value == nullptr) return {};
  std::string type = value->substr(0, value->find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.erase(0, 1);
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return type;
}

Response json_response(int status, const nlohmann::json& body) {
  Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Response oauth_error(int status, std::string_view error, std::string_view description) {
  nlohmann::json body = {{"error", error}};
  if (!description.empty()) body["error_description"] = description;
  Response r = json_response(status, body);
  r.headers.emplace_back("Pragma", "no-cache");
  return r;
}

Result<Params> parse_form(std::string_view body) {
  Params out;
  size_t at = 0;
  while (at <= body.size()) {
    size_t end = body.find('&', at);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view pair = body.substr(at, end - at);
    at = end + 1;
    if (pair.empty()) {
      if (end == body.size()) break;
      continue;
    }
    const size_t eq = pair.find('=');
    auto name = form_decode(pair.substr(0, eq));
    if (!name) return fail(fmt::format("form body: {}", name.error().message));
    auto value =
        form_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!value) return fail(fmt::format("form body: {}", value.error().message));
    out.emplace_back(std::move(*name), std::move(*value));
    if (end == body.size()) break;
  }
  return out;
}

std::string form_encode(const Params& params) {
  std::string out;
  const auto encode = [&](std::string_view text) {
    for (const char c : text) {
      const auto u = static_cast<unsigned char>(c);
      if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '*') {
        out.push_back(c);
      } else if (c == ' ') {
        out.push_back('+');
      } else {
        out += fmt::format("%{:02X}", u);
      }
    }
  };
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    encode(name);
    out.push_back('=');
    encode(value);
  }
  return out;
}

std::optional<std::string_view> bearer_token(const Request& request) {
  const std::string* value = request.header("Authorization");
  if (value == nullptr) return std::nullopt;
  const std::string_view text(*value);
  // RFC 6750 §2.1: the scheme is case-insensitive, one space, then the token68.
  if (text.size() <= 7 || !iequals(text.substr(0, 7), "Bearer ")) return std::nullopt;
  std::string_view token = text.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

Result<std::optional<std::string>> single(const Params& params, std::string_view name) {
  std::optional<std::string> found;
  for (const auto& [key, value] : params) {
    if (key != name) continue;
    if (found) return fail(fmt::format("parameter {} is given more than once", name));
    found = value;
  }
  return found;
}

std::vector<std::string> all(const Params& params, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [key, value] : params) {
    if (key == name) out.push_back(value);
  }
  return out;
}

}  // namespace gh::admin

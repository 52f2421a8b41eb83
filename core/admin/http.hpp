// The admin API's requests and responses as plain values, and the small pieces of HTTP and
// OAuth 2.0 syntax it needs (form bodies, bearer credentials, RFC 6749 error bodies).
// Sans-I/O: must not depend on the HTTP library (http_server.cpp adapts it) or on any protocol.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace gh::admin {

using Params = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query
  Params query;
  Params headers;  // as received; header() compares names case-insensitively
  std::string body;
  std::string remote_address;  // "127.0.0.1:51234"
  // Filled by the router from the route's {name} segments.
  std::map<std::string, std::string, std::less<>> path_params;

  // The first header of that name (RFC 9110 §5.1: names are case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
  // The media type of Content-Type without parameters, lower-cased ("" when absent).
  std::string media_type() const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  Params headers;
};

// A JSON body (serialized without throwing: strings that are not UTF-8 become U+FFFD).
Response json_response(int status, const nlohmann::json& body);
// RFC 6749 §5.2 error response: {"error": ..., "error_description": ...}, no-store.
Response oauth_error(int status, std::string_view error, std::string_view description);

// application/x-www-form-urlencoded (RFC 6749 Appendix B; WHATWG URL "urlencoded parser"):
// name=value pairs split on '&', '+' is a space, %XX a byte. Refuses malformed escapes.
Result<Params> parse_form(std::string_view body);
std::string form_encode(const Params& params);

// The token of "Authorization: Bearer <token>" (RFC 6750 §2.1), or nullopt.
std::optional<std::string_view> bearer_token(const Request& request);

// The only value of a parameter: nullopt when absent; an error when given more than once
// (RFC 6749 §3.2: parameters MUST NOT be included more than once).
Result<std::optional<std::string>> single(const Params& params, std::string_view name);
std::vector<std::string> all(const Params& params, std::string_view name);

}  // namespace gh::admin

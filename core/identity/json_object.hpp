// Strict parsing of the JSON objects inside tokens and JWKS files: no exceptions, no duplicates.
// Must not depend on protocols, I/O or OpenSSL.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace gh::identity {

// Parses `text` as exactly one JSON object. Duplicate member names at any level are refused
// (RFC 7519 §4 allows refusing them, and a parser that keeps the first where another keeps the
// last is how claims get smuggled). `what` names the text in error messages ("header").
gh::Result<nlohmann::json> parse_json_object(std::string_view text, std::string_view what);

// `text` as a quoted JSON string, cut to at most `bytes_max` bytes of input: peer-supplied values
// go into audit reasons this way, so that they cannot forge lines or flood the trail.
std::string quote(std::string_view text, size_t bytes_max = 64);

}  // namespace gh::identity

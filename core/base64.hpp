// Base64 (RFC 4648 §4) and base64url without padding (§5, as JWS uses it).
// Pure functions over bytes; no I/O, no protocol knowledge.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gh {

std::string base64_encode(std::string_view bytes);
std::string base64url_encode(std::string_view bytes);  // no '=' padding
// Both return nullopt on characters outside the alphabet or impossible lengths.
std::optional<std::string> base64_decode(std::string_view text);
std::optional<std::string> base64url_decode(std::string_view text);  // padding optional

}  // namespace gh

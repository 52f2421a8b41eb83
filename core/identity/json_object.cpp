// Strict parsing of the JSON objects inside tokens and JWKS files: no exceptions, no duplicates.
// Must not depend on protocols, I/O or OpenSSL.
#include "core/identity/json_object.hpp"

#include <fmt/format.h>

#include <set>
#include <string>
#include <vector>

namespace gh::identity {

gh::Result<nlohmann::json> parse_json_object(std::string_view text, std::string_view what) {
  using json = nlohmann::json;
  std::vector<std::set<std::string, std::less<>>> open_objects;
  std::string duplicate;
  bool has_duplicate = false;
  const json::parser_callback_t track = [&](int /*depth*/, json::parse_event_t event,
                                            json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (const auto* name = parsed.get_ptr<const std::string*>();
            name != nullptr && !open_objects.empty()) {
          if (!open_objects.back().insert(*name).second && !has_duplicate) {
            has_duplicate = true;
            duplicate = *name;
          }
        }
        break;
      default:
        break;
    }
    return true;
  };
  json value = json::parse(text.begin(), text.end(), track, /*allow_exceptions=*/false);
  if (value.is_discarded()) return gh::fail(fmt::format("{} is not valid JSON", what));
  if (!value.is_object()) return gh::fail(fmt::format("{} is not a JSON object", what));
  if (has_duplicate) {
    return gh::fail(fmt::format("{} has duplicate member \"{}\"", what, duplicate));
  }
  return value;
}

std::string quote(std::string_view text, size_t bytes_max) {
  const bool cut = text.size() > bytes_max;
  if (cut) text = text.substr(0, bytes_max);
  // The replace handler turns invalid UTF-8 (or a character cut in half above) into U+FFFD
  // instead of throwing.
  std::string out =
      nlohmann::json(std::string(text))
          .dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
  if (cut) out += "...";
  return out;
}

}  // namespace gh::identity

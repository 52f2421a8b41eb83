// Field access on replayed trail events (`gatehouse replay ID --json`), on top of trail.hpp.
// Test support only; header-only.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "tests/integration/support/trail.hpp"

namespace gh::test {

// A field of a replayed event as text: "" when absent, repeated values joined by ','.
inline std::string event_field(const nlohmann::json& event, const std::string& name) {
  if (!event.contains("fields") || !event["fields"].contains(name)) return {};
  const auto& v = event["fields"][name];
  if (v.is_string()) return v.get<std::string>();
  std::string out;
  if (v.is_array()) {
    for (const auto& e : v) out += (out.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
  }
  return out;
}

// Every value of a field of a replayed event, in order (a repeated field is an array).
inline std::vector<std::string> event_values(const nlohmann::json& event, const std::string& name) {
  std::vector<std::string> out;
  if (!event.contains("fields") || !event["fields"].contains(name)) return out;
  const auto& v = event["fields"][name];
  if (v.is_string()) out.push_back(v.get<std::string>());
  if (v.is_array()) {
    for (const auto& e : v) out.push_back(e.is_string() ? e.get<std::string>() : e.dump());
  }
  return out;
}

}  // namespace gh::test

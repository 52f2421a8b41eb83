// Trail read-back through the gatehouse CLI. Test support only.
#include "tests/integration/support/trail.hpp"

#include <stdexcept>

namespace gh::test {

nlohmann::json trail_sessions(const Gateway& gw) {
  // From the segments: tests read what a running gateway has written so far, which the catalog
  // indexes a little later (record/FORMAT.md, "Catalog").
  auto r = gw.cli({"sessions", "--dir", gw.trail_dir().string(), "--scan", "--json"});
  if (r.exit_code != 0) throw std::runtime_error("gatehouse sessions: " + r.err);
  return nlohmann::json::parse(r.out);
}

nlohmann::json trail_replay(const Gateway& gw, const std::string& session_id) {
  auto r = gw.cli({"replay", session_id, "--dir", gw.trail_dir().string(), "--json"});
  if (r.exit_code != 0) throw std::runtime_error("gatehouse replay " + session_id + ": " + r.err);
  return nlohmann::json::parse(r.out);
}

std::vector<nlohmann::json> sessions_of_user(const nlohmann::json& sessions, const std::string& user) {
  std::vector<nlohmann::json> out;
  for (const auto& s : sessions) {
    if (s.value("user", "") == user) out.push_back(s);
  }
  return out;
}

std::vector<nlohmann::json> events_of_type(const nlohmann::json& replay, const std::string& type) {
  std::vector<nlohmann::json> out;
  if (!replay.contains("events")) return out;
  for (const auto& e : replay["events"]) {
    if (e.value("type", "") == type) out.push_back(e);
  }
  return out;
}

}  // namespace gh::test

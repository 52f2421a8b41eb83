// Reading a gateway's recorded trail back through the gatehouse CLI, as a user would
// (`gatehouse sessions --json`, `gatehouse replay ID --json`). Test support only.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "tests/integration/support/gateway.hpp"

namespace gh::test {

// `gatehouse sessions --dir <trail> --scan --json`, parsed; throws when the command fails.
nlohmann::json trail_sessions(const Gateway& gw);
// `gatehouse replay ID --dir <trail> --json`, parsed; throws when the command fails.
nlohmann::json trail_replay(const Gateway& gw, const std::string& session_id);
// The session summaries whose database user is `user`.
std::vector<nlohmann::json> sessions_of_user(const nlohmann::json& sessions, const std::string& user);
// The events of one type ("auth_failure", "error", "session_end"...) of a replayed session.
std::vector<nlohmann::json> events_of_type(const nlohmann::json& replay, const std::string& type);

}  // namespace gh::test

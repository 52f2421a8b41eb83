// Connection access decisions for validated callers.
// Must not depend on any wire protocol.
#include "core/access.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/identity/json_object.hpp"

namespace gh::access {

std::optional<std::string> refusal(const config::ConnectionConfig& connection,
                                   const identity::Identity& identity) {
  if (!config::groups_allowed(connection, identity.groups)) {
    return fmt::format("groups of '{}' not allowed on connection '{}'", identity.subject,
                       connection.name);
  }
  if (identity.connections && std::find(identity.connections->begin(), identity.connections->end(),
                                        connection.name) == identity.connections->end()) {
    return fmt::format("token is narrowed to other connections than '{}'", connection.name);
  }
  for (const config::ClaimRule& rule : connection.require_claims) {
    const std::string* value = identity.provenance_value(rule.claim);
    if (value == nullptr) {
      return fmt::format("connection '{}' requires provenance claim {}, which the token lacks",
                         connection.name, identity::quote(rule.claim));
    }
    if (std::find(rule.values.begin(), rule.values.end(), *value) == rule.values.end()) {
      return fmt::format("provenance claim {} is {}, which connection '{}' does not accept",
                         identity::quote(rule.claim), identity::quote(*value, 200),
                         connection.name);
    }
  }
  return std::nullopt;
}

}  // namespace gh::access

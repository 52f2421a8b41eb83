// Whether a validated caller may use a connection: groups, the token's own narrowing to
// connections (token exchange), and CI provenance rules. Must not depend on any wire protocol.
#pragma once

#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/identity/identity.hpp"

namespace gh::access {

// nullopt when `identity` may use `connection`; otherwise the precise reason, for the audit
// trail only (clients get the protocol's one generic refusal). Only top-level claims grant
// anything: the groups claim, gh_connections and the provenance claims; actors nested in "act"
// never do.
std::optional<std::string> refusal(const config::ConnectionConfig& connection,
                                   const identity::Identity& identity);

}  // namespace gh::access

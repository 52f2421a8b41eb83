// Who is calling: the subject of a validated token and the RFC 8693 delegation chain behind it.
// Must not depend on protocols, I/O or OpenSSL.
#include "core/identity/identity.hpp"

namespace gh::identity {

std::vector<std::string> Identity::chain() const {
  std::vector<std::string> out;
  out.reserve(actors.size() + 1);
  out.push_back(subject);
  out.insert(out.end(), actors.begin(), actors.end());
  return out;
}

std::string Identity::chain_string() const {
  std::string out = subject;
  for (const std::string& actor : actors) {
    out += " \u2192 ";
    out += actor;
  }
  return out;
}

const std::string* Identity::provenance_value(std::string_view name) const {
  for (const auto& [claim, value] : provenance) {
    if (claim == name) return &value;
  }
  return nullptr;
}

}  // namespace gh::identity

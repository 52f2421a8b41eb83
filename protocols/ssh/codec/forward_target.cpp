// Port forwarding targets: formatting and the allow-list check.
#include "protocols/ssh/codec/forward_target.hpp"

#include <algorithm>
#include <cctype>

namespace gh::ssh {

std::string target_text(std::string_view host, uint32_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string out;
  out.reserve(host.size() + 8);
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

bool target_allowed(const std::vector<std::string>& allowed, std::string_view host, uint32_t port) {
  if (allowed.empty()) return true;
  const std::string wanted = target_text(host, port);
  const auto same = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  };
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& entry) {
    return entry.size() == wanted.size() && std::equal(entry.begin(), entry.end(), wanted.begin(), same);
  });
}

}  // namespace gh::ssh

// Port forwarding targets as "host:port" text: the allow-list check of direct-tcpip opens and the
// text the trail names them by. Pure functions, standard library only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gh::ssh {

// "host:port"; an IPv6 literal in brackets ("[::1]:22") so that the port stays unambiguous.
std::string target_text(std::string_view host, uint32_t port);

// Whether `host`:`port` is one of `allowed` ("host:port" entries, hosts compared without case,
// "[::1]:22" for IPv6 literals). An empty list allows every target.
bool target_allowed(const std::vector<std::string>& allowed, std::string_view host, uint32_t port);

}  // namespace gh::ssh

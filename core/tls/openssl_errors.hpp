// Turns OpenSSL's per-thread error queue into the text of a gh::Error.
// Internal to core/tls; must not know any wire protocol.
#pragma once

#include <string>

namespace gh::tls {

// Drains the calling thread's OpenSSL error queue: "reason; reason" (library:reason form), or
// `fallback` when the queue is empty. Always leaves the queue empty for the next operation.
std::string drain_openssl_errors(const std::string& fallback = "unknown OpenSSL error");

// Empties the queue without reading it (before an operation whose errors we will report).
void clear_openssl_errors();

}  // namespace gh::tls

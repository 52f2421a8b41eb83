// The error value every module returns instead of throwing (STYLE.md, Errors).
// Must not depend on any protocol, on I/O or on anything beyond the standard library.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace gh {

// A human-readable reason, with enough context (file, key, peer) to act on it.
struct Error {
  std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string message) {
  return std::unexpected<Error>(Error{std::move(message)});
}

}  // namespace gh

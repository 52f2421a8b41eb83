// PostgreSQL's MD5 password response (protocol docs, AuthenticationMD5Password), for upstream
// login. Pure function over bytes; must not depend on the PostgreSQL codec or on I/O.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace gh::pg {

// "md5" + hex(md5(hex(md5(password + user)) + salt)), lower-case hex: the PasswordMessage body
// (without its NUL terminator) answering AuthenticationMD5Password with this 4-byte salt.
// Fails only if OpenSSL offers no MD5 (a FIPS-only configuration): the upstream picks the method,
// so that must be an error value, not an assertion.
gh::Result<std::string> md5_password_response(std::string_view user, std::string_view password,
                                              std::span<const std::byte, 4> salt);

}  // namespace gh::pg

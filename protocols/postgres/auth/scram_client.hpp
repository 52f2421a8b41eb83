// SCRAM-SHA-256 client (RFC 5802, RFC 7677) as PostgreSQL uses it, for the gateway's upstream
// login. Sans-I/O over plain strings: must not depend on the PostgreSQL codec or on I/O.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace gh::pg {

// Limits on what a server may send (STYLE.md, Limits). PostgreSQL's libpq accepts any iteration
// count >= 1 and the server's scram_iterations may be set as low as 1, so the floor is 1. The
// ceiling bounds the CPU one login may burn on a shard thread (PBKDF2 runs synchronously): a
// million iterations take about a quarter of a second on a current core; PostgreSQL's default is
// 4096 (about a millisecond), and use_keys() avoids even that on repeated logins.
inline constexpr uint32_t kScramIterationsMin = 1;
inline constexpr uint32_t kScramIterationsMax = 1'000'000;
inline constexpr size_t kScramServerMessageBytesMax = 4096;
inline constexpr size_t kScramSaltBytesMax = 1024;
inline constexpr size_t kScramNonceRawBytes = 18;  // as libpq: 24 base64 characters on the wire
static_assert(kScramIterationsMin >= 1 && kScramIterationsMin <= kScramIterationsMax);
static_assert(kScramSaltBytesMax < kScramServerMessageBytesMax);

// What Hi() derives from the password for one (salt, iterations). PostgreSQL keeps the same salt
// and count for a role until its password changes, so a shard may keep these after a verified
// login and skip PBKDF2 on the next one (ScramClient::use_keys). They are password-equivalent
// secrets for that server: keep them as carefully as the password.
struct ScramKeys {
  std::string salt;  // decoded bytes
  uint32_t iterations = 0;
  std::array<unsigned char, 32> client_key{};
  std::array<unsigned char, 32> server_key{};
};

// One login. Call in order: client_first_message, client_final_message(server-first),
// verify_server_final(server-final); calling out of order is a programmer error (GH_ASSERT).
// Any error is final for this object. The session must treat AuthenticationOk as success only if
// verify_server_final succeeded, or a server that skips AuthenticationSASLFinal would be trusted
// without proving that it knows the password.
//
// No channel binding (gs2 header "n,,", no authzid). Only the password goes through SASLprep
// (saslprep.hpp); the username is sent with RFC 5802's "=2C"/"=3D" escaping but not prepared,
// because PostgreSQL ignores it and takes the user from the startup packet.
class ScramClient {
 public:
  // An empty client_nonce draws kScramNonceRawBytes from RAND_bytes, base64-encoded. A given
  // nonce must be printable ASCII without ',' (tests use the RFC's). The username defaults to
  // empty, "n=" as PostgreSQL expects; RFC 7677's example sets it to "user".
  explicit ScramClient(std::string password, std::string client_nonce = {},
                       std::string username = {});
  ScramClient(const ScramClient&) = delete;
  ScramClient& operator=(const ScramClient&) = delete;
  ScramClient(ScramClient&&) noexcept = default;
  ScramClient& operator=(ScramClient&&) noexcept = default;
  ~ScramClient();

  // Reuse keys derived at an earlier login; used only if the server sends the same salt and count.
  void use_keys(ScramKeys keys);

  // "n,,n=<user>,r=<nonce>", the SASLInitialResponse data.
  std::string client_first_message();
  // Parses the AuthenticationSASLContinue data (RFC 5802 §7 server-first-message) and returns the
  // SASLResponse data "c=biws,r=<nonce>,p=<proof>". Errors: a mandatory extension (m=), a nonce
  // that does not extend ours, a missing or empty salt, an iteration count outside
  // [kScramIterationsMin, kScramIterationsMax], malformed attributes.
  gh::Result<std::string> client_final_message(std::string_view server_first);
  // Checks the AuthenticationSASLFinal data: "v=<ServerSignature>" compared in constant time;
  // "e=<reason>" is the server refusing us and is returned as an error naming the reason.
  gh::Result<void> verify_server_final(std::string_view server_final);

  // After a successful client_final_message: the keys used, for use_keys at the next login.
  const std::optional<ScramKeys>& keys() const { return keys_; }
  // True once verify_server_final has succeeded.
  bool server_verified() const { return state_ == State::kVerified; }

 private:
  enum class State { kInitial, kFirstSent, kFinalSent, kVerified, kFailed };

  std::unexpected<gh::Error> fail_with(std::string reason);

  State state_ = State::kInitial;
  std::string password_;  // after SASLprep
  std::string nonce_;
  std::string username_;
  std::string client_first_bare_;
  std::optional<ScramKeys> keys_;
  std::array<unsigned char, 32> server_signature_{};
};

}  // namespace gh::pg

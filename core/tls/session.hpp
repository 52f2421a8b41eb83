// One TLS connection as a sans-I/O engine over OpenSSL memory BIOs: ciphertext in, plaintext out.
// Must not know any wire protocol and must do no socket I/O; the shard's reactor moves the bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/tls/context.hpp"

struct ssl_st;  // OpenSSL's SSL
struct bio_st;  // OpenSSL's BIO

namespace gh::tls {

// Owned by one shard thread (OpenSSL per-connection state is not thread-safe); movable, not
// copyable. It keeps its own reference to the context, so the context object may go away first.
//
// The caller's loop, after every recv and after every call below that may produce output:
//   feed(received) -> handshake() until true -> read() until 0 -> take_output() until empty ->
//   send.
// Everything is buffered inside (memory BIOs grow as needed): nothing is lost between calls.
//
// After the first fatal error (handshake failure, alert, corrupted record) every call returns
// that same error; pending_output() may still hold the alert to send to the peer before closing.
class Session {
 public:
  static gh::Result<Session> server(const ServerContext& context);
  // `server_name` (or, when empty, the context's) is sent as SNI when it is a DNS name and, with
  // Verify::kFull, is what the certificate must match: a DNS name, or an IPv4/IPv6 literal
  // checked against the IP address SANs. Error if kFull has no name.
  static gh::Result<Session> client(const ClientContext& context,
                                    std::string_view server_name = {});

  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Ciphertext received from the socket; copied, so `ciphertext` may be reused at once.
  gh::Result<void> feed(std::span<const std::byte> ciphertext);
  // The socket reached EOF. A read() that then runs out of input without a close_notify reports
  // a truncation error (an attacker may have cut the stream) instead of waiting for more.
  void feed_eof();

  // Advances the handshake; true once complete. An error carries OpenSSL's reason and, for a
  // rejected certificate, the verification result (e.g. "hostname mismatch").
  gh::Result<bool> handshake();
  bool handshake_done() const;

  // Up to out.size() decrypted bytes; 0 = nothing now (feed more), or the peer closed: see
  // peer_closed(). Errors on an alert, a corrupted or truncated record. May also queue output
  // (e.g. a TLS 1.3 KeyUpdate reply), so check pending_output() afterwards.
  gh::Result<size_t> read(std::span<std::byte> out);
  // The peer sent close_notify: a clean end of its data. Answer with shutdown().
  bool peer_closed() const { return peer_closed_; }

  // Encrypts all of `plaintext` into pending output. Only after handshake_done() (asserted).
  gh::Result<void> write(std::span<const std::byte> plaintext);

  // Moves up to out.size() bytes of ciphertext to send into `out`; returns how many.
  size_t take_output(std::span<std::byte> out);
  size_t pending_output() const;
  // Ciphertext fed but not yet decrypted (back-pressure: stop reading the socket while large).
  size_t pending_input() const;

  // Queues close_notify. Nothing is queued if the handshake is unfinished or failed; write() is
  // refused afterwards.
  void shutdown();

  // "TLSv1.2" / "TLSv1.3" once the handshake is done; empty before.
  std::string_view protocol_version() const;

 private:
  Session(ssl_st* ssl, bio_st* in, bio_st* out) : ssl_(ssl), in_(in), out_(out) {}
  std::unexpected<gh::Error> fail_with(std::string what, int ssl_error);

  ssl_st* ssl_ = nullptr;
  bio_st* in_ = nullptr;   // owned by ssl_: ciphertext from the peer
  bio_st* out_ = nullptr;  // owned by ssl_: ciphertext for the peer
  std::optional<std::string> failure_;
  bool peer_closed_ = false;
  bool shutdown_sent_ = false;
};

}  // namespace gh::tls

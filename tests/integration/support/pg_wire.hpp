// A raw-socket PostgreSQL client for integration tests: sends bytes built with the codec's
// encoders, splits what comes back with its decoders and keeps every received byte. Test support
// only; link gh_pg_codec.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocols/postgres/codec/decoder.hpp"

namespace gh::test {

// One backend message as received: the whole frame, type byte included, owned.
struct WireMessage {
  char type = 0;
  std::string frame;

  // Decodes the frame; the views in the result point into `frame` (keep this object alive).
  pg::BackendDecoded decode() const;
  // A field of an ErrorResponse or NoticeResponse ('V' severity, 'C' SQLSTATE, 'M' message);
  // empty when absent or when this is another message.
  std::string field(char code) const;
  // The code of an Authentication message, -1 for any other message.
  int32_t auth_code() const;
  // The first column of a DataRow as text (empty for NULL or another message).
  std::string first_value() const;
};

// Splits a backend byte stream (typed messages only) into messages. Stops at the first incomplete
// or invalid frame; `rest`, when given, receives the number of bytes left over.
std::vector<WireMessage> split_backend(std::string_view bytes, size_t* rest = nullptr);

// Protocol 3.0 StartupMessage with user, database and extra parameters.
std::string startup_packet(const std::string& user, const std::string& database,
                           const std::vector<std::pair<std::string, std::string>>& extra = {});

// A blocking TCP client on 127.0.0.1 whose every read waits at most io_timeout.
class WireClient {
 public:
  explicit WireClient(uint16_t port,
                      std::chrono::milliseconds io_timeout = std::chrono::seconds(10));
  ~WireClient();
  WireClient(const WireClient&) = delete;
  WireClient& operator=(const WireClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  // One send(2) of all bytes (MSG_NOSIGNAL); false when the socket refused them.
  bool send_raw(std::string_view bytes);
  bool send_startup(const std::string& user, const std::string& database);
  bool send_password(std::string_view password);
  bool send_query(std::string_view sql);
  bool send_terminate();

  // The next whole backend message; nullopt at EOF, on a reset or when io_timeout passes.
  std::optional<WireMessage> next();
  // Up to n raw bytes (e.g. the one-byte answer to SSLRequest), fewer on EOF or time-out.
  std::string read_raw(size_t n);
  // Messages up to and including ReadyForQuery; stops early at EOF or time-out (then the last
  // message is not 'Z').
  std::vector<WireMessage> until_ready();
  // Reads until the peer closes; true when it did within `timeout`. Bytes read are kept.
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool peer_closed() const { return closed_; }

  // StartupMessage, then the token as the password when the server asks for a cleartext password.
  // Returns every message received, up to ReadyForQuery or the connection's end.
  std::vector<WireMessage> login(const std::string& user, const std::string& database,
                                 const std::string& token);
  // A simple Query; the messages up to ReadyForQuery.
  std::vector<WireMessage> query(std::string_view sql);

  // Every byte received so far, in order.
  const std::string& received() const { return received_; }

 private:
  // Appends what one recv returns to the buffers; false at EOF, error or time-out.
  bool fill(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::chrono::milliseconds io_timeout_;
  std::string buffer_;  // received, not yet returned
  std::string received_;
  bool closed_ = false;
};

}  // namespace gh::test

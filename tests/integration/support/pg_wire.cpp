// Raw-socket PostgreSQL client for integration tests (codec encoders out, decoders in).
// Test support only.
#include "tests/integration/support/pg_wire.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "protocols/postgres/codec/encoder.hpp"

namespace gh::test {

pg::BackendDecoded WireMessage::decode() const {
  return pg::decode_backend_frame(pg::wire::as_bytes(frame), pg::DecoderLimits{});
}

std::string WireMessage::field(char code) const {
  const pg::BackendDecoded d = decode();
  if (d.status != pg::Status::kMessage) return {};
  if (const auto* e = std::get_if<pg::ErrorResponse>(&d.message))
    return std::string(e->field(code).value_or(""));
  if (const auto* n = std::get_if<pg::NoticeResponse>(&d.message))
    return std::string(n->field(code).value_or(""));
  return {};
}

int32_t WireMessage::auth_code() const {
  const pg::BackendDecoded d = decode();
  if (d.status != pg::Status::kMessage) return -1;
  const auto* a = std::get_if<pg::Authentication>(&d.message);
  return a ? a->code : -1;
}

std::string WireMessage::first_value() const {
  const pg::BackendDecoded d = decode();
  if (d.status != pg::Status::kMessage) return {};
  const auto* row = std::get_if<pg::DataRow>(&d.message);
  if (row == nullptr) return {};
  for (const pg::ColumnValue& v : row->value_range()) return v ? std::string(*v) : std::string();
  return {};
}

std::vector<WireMessage> split_backend(std::string_view bytes, size_t* rest) {
  std::vector<WireMessage> out;
  const pg::DecoderLimits limits;
  size_t at = 0;
  while (at < bytes.size()) {
    const pg::BackendDecoded d = pg::decode_backend_frame(pg::wire::as_bytes(bytes.substr(at)), limits);
    if (d.status != pg::Status::kMessage) break;
    out.push_back(WireMessage{bytes[at], std::string(bytes.substr(at, d.consumed))});
    at += d.consumed;
  }
  if (rest != nullptr) *rest = bytes.size() - at;
  return out;
}

std::string startup_packet(const std::string& user, const std::string& database,
                           const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<pg::StartupParameter> parameters = {{"user", user}, {"database", database}};
  for (const auto& [k, v] : extra) parameters.push_back({k, v});
  std::string out;
  pg::encode_startup_message(out, parameters);
  return out;
}

WireClient::WireClient(uint16_t port, std::chrono::milliseconds io_timeout) : io_timeout_(io_timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd_ = fd;
}

WireClient::~WireClient() {
  if (fd_ >= 0) close(fd_);
}

bool WireClient::send_raw(std::string_view bytes) {
  if (fd_ < 0) return false;
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += size_t(n);
  }
  return true;
}

bool WireClient::send_startup(const std::string& user, const std::string& database) {
  return send_raw(startup_packet(user, database));
}

bool WireClient::send_password(std::string_view password) {
  std::string out;
  pg::encode_password_message(out, password);
  return send_raw(out);
}

bool WireClient::send_query(std::string_view sql) {
  std::string out;
  pg::encode_query(out, sql);
  return send_raw(out);
}

bool WireClient::send_terminate() {
  std::string out;
  pg::encode_terminate(out);
  return send_raw(out);
}

bool WireClient::fill(std::chrono::steady_clock::time_point deadline) {
  if (fd_ < 0 || closed_) return false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    const int ready = poll(&p, 1, int(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    char chunk[16384];
    const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      closed_ = true;  // EOF or reset: either way the peer is gone
      return false;
    }
    buffer_.append(chunk, size_t(n));
    received_.append(chunk, size_t(n));
    return true;
  }
}

std::optional<WireMessage> WireClient::next() {
  const auto deadline = std::chrono::steady_clock::now() + io_timeout_;
  while (true) {
    if (!buffer_.empty()) {
      const pg::BackendDecoded d =
          pg::decode_backend_frame(pg::wire::as_bytes(buffer_), pg::DecoderLimits{});
      if (d.status == pg::Status::kMessage) {
        WireMessage m{buffer_[0], buffer_.substr(0, d.consumed)};
        buffer_.erase(0, d.consumed);
        return m;
      }
      if (d.status == pg::Status::kError) return std::nullopt;
    }
    if (!fill(deadline)) return std::nullopt;
  }
}

std::string WireClient::read_raw(size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + io_timeout_;
  while (buffer_.size() < n && fill(deadline)) {
  }
  std::string out = buffer_.substr(0, n);
  buffer_.erase(0, out.size());
  return out;
}

std::vector<WireMessage> WireClient::until_ready() {
  std::vector<WireMessage> out;
  for (int i = 0; i < 100000; ++i) {
    auto m = next();
    if (!m) break;
    const bool ready = m->type == 'Z';
    out.push_back(std::move(*m));
    if (ready) break;
  }
  return out;
}

bool WireClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!closed_) {
    if (!fill(deadline) && !closed_) return false;
  }
  return true;
}

std::vector<WireMessage> WireClient::login(const std::string& user, const std::string& database,
                                           const std::string& token) {
  std::vector<WireMessage> out;
  if (!send_startup(user, database)) return out;
  auto request = next();
  if (!request) return out;
  const bool asks_password = request->auth_code() == pg::Authentication::kCleartextPassword;
  out.push_back(std::move(*request));
  if (!asks_password) return out;
  if (!send_password(token)) return out;
  for (auto& m : until_ready()) out.push_back(std::move(m));
  return out;
}

std::vector<WireMessage> WireClient::query(std::string_view sql) {
  if (!send_query(sql)) return {};
  return until_ready();
}

}  // namespace gh::test

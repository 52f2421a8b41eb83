// Unit tests of core/tls: a server and a client Session pumped into each other in memory.
// Sans-I/O: no sockets; throwaway certificates are generated into a temporary directory.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "core/tls/context.hpp"
#include "core/tls/self_signed.hpp"
#include "core/tls/session.hpp"

namespace gh::tls {
namespace {

namespace fs = std::filesystem;

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// Moves everything `from` has to send into `to`, through a buffer of `chunk` bytes.
void pump(Session& from, Session& to, size_t chunk = 4096) {
  std::vector<std::byte> buf(chunk);
  while (from.pending_output() > 0) {
    const size_t n = from.take_output(buf);
    ASSERT_GT(n, 0u);
    ASSERT_TRUE(to.feed(std::span(buf.data(), n)).has_value());
  }
}

// Drives both handshakes to completion; the error says which side failed and why.
gh::Result<void> connect(Session& client, Session& server) {
  for (int round = 0; round < 20; ++round) {
    auto c = client.handshake();
    pump(client, server);
    if (!c) return gh::fail("client: " + c.error().message);
    auto s = server.handshake();
    pump(server, client);
    if (!s) return gh::fail("server: " + s.error().message);
    if (*c && *s && client.pending_output() == 0 && server.pending_output() == 0) return {};
  }
  return gh::fail("handshake made no progress");
}

std::string read_all(Session& s) {
  std::string out;
  std::byte buf[1000];
  while (true) {
    auto n = s.read(buf);
    EXPECT_TRUE(n.has_value()) << n.error().message;
    if (!n || *n == 0) break;
    out.append(reinterpret_cast<const char*>(buf), *n);
  }
  return out;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/gh_tls_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = new fs::path(tmpl);
    auto a = write_self_signed(*dir_ / "a", "localhost");
    ASSERT_TRUE(a.has_value()) << a.error().message;
    auto b = write_self_signed(*dir_ / "b", "localhost");
    ASSERT_TRUE(b.has_value()) << b.error().message;
    certs_ = new CertFiles(*a);
    other_ = new CertFiles(*b);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete certs_;
    delete other_;
  }

  static ServerContext server_context(std::string min_version = "TLSv1.2") {
    auto ctx = ServerContext::create({certs_->cert_file, certs_->key_file, min_version});
    EXPECT_TRUE(ctx.has_value()) << ctx.error().message;
    return std::move(*ctx);
  }
  static ClientContext client_context(ClientConfig::Verify verify, std::string ca_file,
                                      std::string server_name = {}) {
    auto ctx = ClientContext::create({verify, std::move(ca_file), std::move(server_name)});
    EXPECT_TRUE(ctx.has_value()) << ctx.error().message;
    return std::move(*ctx);
  }
  static std::pair<Session, Session> connected_pair() {
    auto client =
        Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file), "localhost");
    auto server = Session::server(server_context());
    EXPECT_TRUE(client && server);
    auto r = connect(*client, *server);
    EXPECT_TRUE(r.has_value()) << r.error().message;
    return {std::move(*client), std::move(*server)};
  }

  static fs::path* dir_;
  static CertFiles* certs_;
  static CertFiles* other_;  // a second, unrelated CA and server certificate
};
fs::path* TlsTest::dir_ = nullptr;
CertFiles* TlsTest::certs_ = nullptr;
CertFiles* TlsTest::other_ = nullptr;

TEST_F(TlsTest, HandshakeThenDataBothWays) {
  auto [client, server] = connected_pair();
  EXPECT_TRUE(client.handshake_done());
  EXPECT_TRUE(server.handshake_done());
  EXPECT_EQ(client.protocol_version(), "TLSv1.3");
  EXPECT_EQ(server.protocol_version(), "TLSv1.3");

  ASSERT_TRUE(client.write(bytes_of("SELECT 1;")).has_value());
  pump(client, server);
  EXPECT_EQ(read_all(server), "SELECT 1;");
  ASSERT_TRUE(server.write(bytes_of("one row")).has_value());
  pump(server, client);
  EXPECT_EQ(read_all(client), "one row");
  EXPECT_FALSE(client.peer_closed());
  EXPECT_FALSE(server.peer_closed());
}

TEST_F(TlsTest, HandshakeBytesMayArriveOneAtATime) {
  auto client =
      Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file), "localhost");
  auto server = Session::server(server_context());
  ASSERT_TRUE(client && server);
  bool done = false;
  for (int round = 0; round < 20000 && !done; ++round) {
    auto c = client->handshake();
    ASSERT_TRUE(c.has_value()) << c.error().message;
    pump(*client, *server, 1);
    auto s = server->handshake();
    ASSERT_TRUE(s.has_value()) << s.error().message;
    pump(*server, *client, 1);
    done = *c && *s;
  }
  EXPECT_TRUE(done);
}

// Sends `data` from one side to the other: odd write sizes, odd output buffer sizes, odd feed
// sizes and odd read buffer sizes, interleaved so that records are split everywhere.
std::vector<std::byte> transfer(Session& from, Session& to, const std::vector<std::byte>& data) {
  const size_t write_sizes[] = {1, 7, 4093, 16385, 65537, 3, 100003};
  const size_t take_sizes[] = {1021, 1, 17, 8191, 5};
  const size_t feed_sizes[] = {13, 1, 4099, 333};
  std::vector<std::byte> received;
  std::vector<std::byte> wire(8191);
  std::vector<std::byte> plain(777);
  size_t sent = 0;
  size_t step = 0;
  while (received.size() < data.size()) {
    ++step;
    if (sent < data.size()) {
      const size_t n = std::min(write_sizes[step % std::size(write_sizes)], data.size() - sent);
      EXPECT_TRUE(from.write(std::span(data).subspan(sent, n)).has_value());
      sent += n;
    }
    // Move part of the ciphertext: the rest stays queued for a later step.
    const size_t take = take_sizes[step % std::size(take_sizes)];
    const size_t got = from.take_output(std::span(wire).first(take));
    for (size_t off = 0; off < got;) {
      const size_t n = std::min(feed_sizes[(step + off) % std::size(feed_sizes)], got - off);
      EXPECT_TRUE(to.feed(std::span(wire).subspan(off, n)).has_value());
      off += n;
    }
    auto n = to.read(std::span(plain).first(1 + step % plain.size()));
    if (!n) {
      ADD_FAILURE() << n.error().message;
      break;
    }
    received.insert(received.end(), plain.begin(), plain.begin() + static_cast<long>(*n));
    if (sent == data.size() && from.pending_output() == 0 && to.pending_input() == 0 && *n == 0) {
      break;
    }
  }
  return received;
}

TEST_F(TlsTest, OneMebibyteEachWayInOddChunks) {
  auto [client, server] = connected_pair();
  std::vector<std::byte> data(1 << 20);
  std::mt19937 rng(7);
  for (auto& b : data) b = static_cast<std::byte>(rng());
  EXPECT_TRUE(transfer(client, server, data) == data);
  std::reverse(data.begin(), data.end());
  EXPECT_TRUE(transfer(server, client, data) == data);
}

TEST_F(TlsTest, VerifyFullAcceptsTheIpAddressSan) {
  auto client =
      Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file), "127.0.0.1");
  auto server = Session::server(server_context());
  ASSERT_TRUE(client && server);
  auto r = connect(*client, *server);
  EXPECT_TRUE(r.has_value()) << r.error().message;
}

TEST_F(TlsTest, VerifyFullUsesTheContextsServerNameByDefault) {
  auto client =
      Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file, "localhost"));
  auto server = Session::server(server_context());
  ASSERT_TRUE(client && server);
  EXPECT_TRUE(connect(*client, *server).has_value());
}

TEST_F(TlsTest, VerifyFullRejectsWrongHostname) {
  auto client = Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file),
                                "db.example.com");
  auto server = Session::server(server_context());
  ASSERT_TRUE(client && server);
  auto r = connect(*client, *server);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "client: tls: handshake failed")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "hostname mismatch")) << r.error().message;
  // The alert went out with the failure: the server fails too, instead of waiting forever.
  auto s = server->handshake();
  ASSERT_FALSE(s.has_value());
  EXPECT_TRUE(contains(s.error().message, "alert")) << s.error().message;
  // The error is sticky.
  EXPECT_FALSE(client->handshake().has_value());
  std::byte buf[16];
  EXPECT_FALSE(client->read(buf).has_value());
}

TEST_F(TlsTest, VerifyFullRejectsWrongIpAddress) {
  auto client =
      Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file), "127.0.0.2");
  auto server = Session::server(server_context());
  ASSERT_TRUE(client && server);
  auto r = connect(*client, *server);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "IP address mismatch")) << r.error().message;
}

TEST_F(TlsTest, VerifyFullRejectsUntrustedCa) {
  auto client =
      Session::client(client_context(ClientConfig::Verify::kFull, other_->ca_file), "localhost");
  auto server = Session::server(server_context());
  ASSERT_TRUE(client && server);
  auto r = connect(*client, *server);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "certificate verify failed")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "unable to get local issuer certificate"))
      << r.error().message;
}

TEST_F(TlsTest, VerifyFullNeedsAServerName) {
  auto client = Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file));
  ASSERT_FALSE(client.has_value());
  EXPECT_TRUE(contains(client.error().message, "server's name")) << client.error().message;
}

TEST_F(TlsTest, RequireModeEncryptsWithoutVerifying) {
  // No CA, and a name the certificate does not carry: kNone does not care.
  auto client = Session::client(client_context(ClientConfig::Verify::kNone, ""), "whatever");
  auto server = Session::server(server_context());
  ASSERT_TRUE(client && server);
  auto r = connect(*client, *server);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_TRUE(client->write(bytes_of("hello")).has_value());
  pump(*client, *server);
  EXPECT_EQ(read_all(*server), "hello");
  // No name at all is fine too.
  auto unnamed = Session::client(client_context(ClientConfig::Verify::kNone, ""));
  auto server2 = Session::server(server_context());
  ASSERT_TRUE(unnamed && server2);
  EXPECT_TRUE(connect(*unnamed, *server2).has_value());
}

TEST_F(TlsTest, CorruptedRecordIsAnErrorNotACrash) {
  auto [client, server] = connected_pair();
  ASSERT_TRUE(client.write(bytes_of("INSERT INTO audit VALUES (1);")).has_value());
  std::vector<std::byte> wire(client.pending_output());
  ASSERT_EQ(client.take_output(wire), wire.size());
  wire[wire.size() / 2] ^= std::byte{0x40};  // inside the encrypted payload
  ASSERT_TRUE(server.feed(wire).has_value());
  std::byte buf[64];
  auto r = server.read(buf);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "tls: read failed")) << r.error().message;
  EXPECT_GT(server.pending_output(), 0u);  // the alert for the peer
  EXPECT_FALSE(server.read(buf).has_value());
}

TEST_F(TlsTest, GarbageInsteadOfAClientHelloFailsTheHandshake) {
  auto server = Session::server(server_context());
  ASSERT_TRUE(server.has_value());
  ASSERT_TRUE(server->feed(bytes_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).has_value());
  auto r = server->handshake();
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "handshake failed")) << r.error().message;

  // Random bytes at every stage of a client's handshake: errors only.
  std::mt19937 rng(99);
  for (int round = 0; round < 200; ++round) {
    auto client = Session::client(client_context(ClientConfig::Verify::kNone, ""));
    ASSERT_TRUE(client.has_value());
    (void)client->handshake();
    std::vector<std::byte> junk(1 + rng() % 300);
    for (auto& b : junk) b = static_cast<std::byte>(rng());
    if (round % 2 == 0) junk[0] = std::byte{0x16};  // looks like a handshake record
    ASSERT_TRUE(client->feed(junk).has_value());
    auto c = client->handshake();
    if (c.has_value()) {
      EXPECT_FALSE(*c);
    }
  }
}

TEST_F(TlsTest, CloseNotifyIsReportedBothWays) {
  auto [client, server] = connected_pair();
  ASSERT_TRUE(client.write(bytes_of("last words")).has_value());
  client.shutdown();
  pump(client, server);
  EXPECT_EQ(read_all(server), "last words");
  EXPECT_TRUE(server.peer_closed());
  std::byte buf[8];
  auto again = server.read(buf);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, 0u);
  EXPECT_FALSE(client.write(bytes_of("more")).has_value());

  server.shutdown();
  pump(server, client);
  EXPECT_EQ(read_all(client), "");
  EXPECT_TRUE(client.peer_closed());
  // A clean close followed by EOF is still clean.
  server.feed_eof();
  EXPECT_TRUE(server.read(buf).has_value());
}

TEST_F(TlsTest, EofWithoutCloseNotifyIsATruncationError) {
  auto [client, server] = connected_pair();
  ASSERT_TRUE(client.write(bytes_of("partial")).has_value());
  pump(client, server);
  server.feed_eof();
  std::byte buf[64];
  auto n = server.read(buf);
  ASSERT_TRUE(n.has_value());  // the data that did arrive is handed out first
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf), *n), "partial");
  auto r = server.read(buf);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "unexpected eof")) << r.error().message;
  EXPECT_FALSE(server.peer_closed());
}

TEST_F(TlsTest, SessionsMoveMidHandshakeAndOutliveTheirContexts) {
  std::optional<Session> client;
  std::optional<Session> server;
  {
    auto c =
        Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file), "localhost");
    auto s = Session::server(server_context());
    ASSERT_TRUE(c && s);
    ASSERT_FALSE(*c->handshake());
    pump(*c, *s);
    client.emplace(std::move(*c));
    server.emplace(std::move(*s));
  }  // both contexts and the moved-from sessions are gone
  Session moved = std::move(*client);
  EXPECT_TRUE(connect(moved, *server).has_value());
}

TEST_F(TlsTest, MinimumVersionTls13) {
  auto client =
      Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file), "localhost");
  auto server = Session::server(server_context("TLSv1.3"));
  ASSERT_TRUE(client && server);
  ASSERT_TRUE(connect(*client, *server).has_value());
  EXPECT_EQ(server->protocol_version(), "TLSv1.3");
}

TEST_F(TlsTest, ServerContextErrorsNameTheFile) {
  const std::string missing = (*dir_ / "nope.pem").string();
  auto r = ServerContext::create({missing, certs_->key_file});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, missing)) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "No such file")) << r.error().message;

  r = ServerContext::create({certs_->cert_file, missing});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, missing)) << r.error().message;

  // Unreadable as a certificate: a directory, and a file of garbage.
  const std::string directory = dir_->string();
  r = ServerContext::create({directory, certs_->key_file});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "'" + directory + "': is a directory"))
      << r.error().message;

  const std::string garbage = (*dir_ / "garbage.pem").string();
  std::ofstream(garbage) << "not a certificate\n";
  r = ServerContext::create({garbage, certs_->key_file});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, garbage)) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "no start line")) << r.error().message;

  r = ServerContext::create({certs_->cert_file, garbage});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "private key from '" + garbage)) << r.error().message;

  // A key that belongs to another certificate.
  r = ServerContext::create({certs_->cert_file, other_->key_file});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "mismatch")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, other_->key_file)) << r.error().message;

  r = ServerContext::create({certs_->cert_file, certs_->key_file, "SSLv3"});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "SSLv3")) << r.error().message;

  r = ServerContext::create({"", certs_->key_file});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "cert_file")) << r.error().message;
}

TEST_F(TlsTest, ClientContextErrorsNameTheFile) {
  const std::string missing = (*dir_ / "no-ca.pem").string();
  auto r = ClientContext::create({ClientConfig::Verify::kFull, missing, ""});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, missing)) << r.error().message;

  const std::string garbage = (*dir_ / "garbage-ca.pem").string();
  std::ofstream(garbage) << "not a certificate\n";
  r = ClientContext::create({ClientConfig::Verify::kFull, garbage, ""});
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, garbage)) << r.error().message;
}

TEST_F(TlsTest, ContextsAreCopiesOfOneSslCtx) {
  ServerContext a = server_context();
  ServerContext b = a;
  EXPECT_EQ(a.native(), b.native());
  ServerContext c = std::move(b);
  EXPECT_EQ(c.native(), a.native());
  auto client =
      Session::client(client_context(ClientConfig::Verify::kFull, certs_->ca_file), "localhost");
  auto server = Session::server(c);
  ASSERT_TRUE(client && server);
  EXPECT_TRUE(connect(*client, *server).has_value());
}

TEST_F(TlsTest, SelfSignedNamesTheCommonNameAndProtectsTheKey) {
  auto files = write_self_signed(*dir_ / "named", "db.internal");
  ASSERT_TRUE(files.has_value()) << files.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(files->key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto server_ctx = ServerContext::create({files->cert_file, files->key_file});
  ASSERT_TRUE(server_ctx.has_value()) << server_ctx.error().message;
  for (std::string_view name : {"db.internal", "localhost", "::1"}) {
    auto client =
        Session::client(client_context(ClientConfig::Verify::kFull, files->ca_file), name);
    auto server = Session::server(*server_ctx);
    ASSERT_TRUE(client && server);
    auto r = connect(*client, *server);
    EXPECT_TRUE(r.has_value()) << name << ": " << r.error().message;
  }
}

TEST_F(TlsTest, SelfSignedErrors) {
  EXPECT_FALSE(write_self_signed(*dir_ / "x", "a,DNS:evil.example").has_value());
  EXPECT_FALSE(write_self_signed(*dir_ / "x", "").has_value());
  // A directory below a regular file cannot be created.
  const fs::path file = *dir_ / "a-file";
  std::ofstream(file) << "x";
  auto r = write_self_signed(file / "sub", "localhost");
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, (file / "sub").string())) << r.error().message;
}

}  // namespace
}  // namespace gh::tls

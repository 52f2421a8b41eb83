// The SFTP decoder: every packet type's fields, a stream split at every byte offset, lengths out
// of range, malformed and unknown packets, bounded memory with large writes, random bytes.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "protocols/ssh/codec/sftp.hpp"
#include "tests/unit/ssh/sftp_test_support.hpp"

namespace gh::ssh::sftp {
namespace {

using test::Body;
using test::bytes;

// What a test compares: a packet's fields copied out of the decoder's buffer.
struct Seen {
  Decoder::Status status;
  uint8_t type = 0;
  uint32_t id = 0, version = 0, pflags = 0, count = 0, status_code = 0, length = 0;
  uint64_t offset = 0;
  std::string path, path2, handle, extension;
  bool operator==(const Seen&) const = default;
};

// Feeds `stream` in pieces cut at `cuts` (ascending offsets) and collects every report.
std::vector<Seen> decode(std::string_view stream, const std::vector<size_t>& cuts = {}) {
  Decoder decoder;
  std::vector<Seen> out;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    auto in = bytes(stream.substr(from, end - from));
    from = end;
    // Bounded: each call consumes a byte or reports.
    for (size_t guard = 0; guard <= stream.size() + 16; ++guard) {
      const Decoder::Decoded d = decoder.next(in);
      in = in.subspan(d.consumed);
      if (d.status == Decoder::Status::kNeedMore) {
        EXPECT_TRUE(in.empty());
        break;
      }
      const Packet& p = d.packet;
      out.push_back(Seen{d.status, p.type, p.id, p.version, p.pflags, p.count, p.status, p.length,
                         p.offset, std::string(p.path), std::string(p.path2), std::string(p.handle),
                         std::string(p.extension)});
      if (d.status == Decoder::Status::kError) return out;
    }
  }
  return out;
}

// A client's and a server's packets of every kind the tracker reads.
std::string sample_stream() {
  std::string s;
  s += Body(Type::kInit).u32(3).packet();
  s += Body(Type::kVersion).u32(3).str("posix-rename@openssh.com").str("1").packet();
  s += test::open_req(1, "/srv/data/report.csv", kOpenWrite | kOpenCreate | kOpenTruncate);
  s += test::handle_reply(1, std::string("\x00\x00\x00\x07", 4));
  s += test::write_req(2, std::string("\x00\x00\x00\x07", 4), 32768, std::string(1000, 'x'));
  s += test::read_req(3, "h1", 1u << 20, 32768);
  s += test::data_reply(3, std::string(300, '\0'));
  s += test::status_reply(4, 2, "No such file");
  s += test::close_req(5, "h1");
  s += Body(Type::kRename).u32(6).str("/a").str("/b").packet();
  s += Body(Type::kSymlink).u32(7).str("/link").str("/target").packet();
  s += test::path_req(Type::kRemove, 8, "/tmp/old");
  s += test::path_req(Type::kMkdir, 9, "/tmp/new");
  s += Body(Type::kName).u32(10).u32(2).str("a").str("a").u32(0).str("b").str("b").u32(0).packet();
  s += Body(Type::kAttrs).u32(11).u32(0).packet();
  s += Body(Type::kExtended).u32(12).str("posix-rename@openssh.com").str("/x").str("/y").packet();
  s += Body(Type::kExtended).u32(13).str("fsync@openssh.com").str("h1").packet();
  s += Body(Type::kExtended).u32(14).str("limits@openssh.com").packet();
  return s;
}

TEST(SftpDecoder, ReadsTheFieldsOfEveryPacketKind) {
  const auto seen = decode(sample_stream());
  ASSERT_EQ(seen.size(), 18u);
  for (const auto& s : seen) EXPECT_EQ(s.status, Decoder::Status::kMessage) << type_name(s.type);
  EXPECT_EQ(seen[0].type, uint8_t(Type::kInit));
  EXPECT_EQ(seen[0].version, 3u);
  EXPECT_EQ(seen[1].version, 3u);
  EXPECT_EQ(seen[2].id, 1u);
  EXPECT_EQ(seen[2].path, "/srv/data/report.csv");
  EXPECT_EQ(seen[2].pflags, kOpenWrite | kOpenCreate | kOpenTruncate);
  EXPECT_EQ(seen[3].handle, std::string("\x00\x00\x00\x07", 4));
  EXPECT_EQ(seen[4].type, uint8_t(Type::kWrite));
  EXPECT_EQ(seen[4].offset, 32768u);
  EXPECT_EQ(seen[4].count, 1000u);
  EXPECT_EQ(seen[4].length, 1u + 4 + 8 + 8 + 4 + 1000);
  EXPECT_EQ(seen[5].offset, 1u << 20);
  EXPECT_EQ(seen[5].count, 32768u);
  EXPECT_EQ(seen[6].count, 300u);
  EXPECT_EQ(seen[7].status_code, 2u);
  EXPECT_EQ(seen[8].handle, "h1");
  EXPECT_EQ(seen[9].path, "/a");
  EXPECT_EQ(seen[9].path2, "/b");
  EXPECT_EQ(seen[10].path2, "/target");
  EXPECT_EQ(seen[11].path, "/tmp/old");
  EXPECT_EQ(seen[12].type, uint8_t(Type::kMkdir));
  EXPECT_EQ(seen[13].count, 2u);
  EXPECT_EQ(seen[14].id, 11u);
  EXPECT_EQ(seen[15].extension, "posix-rename@openssh.com");
  EXPECT_EQ(seen[15].path2, "/y");
  EXPECT_EQ(seen[16].handle, "h1");
  EXPECT_EQ(seen[17].extension, "limits@openssh.com");
  EXPECT_EQ(type_name(uint8_t(Type::kReadlink)), "readlink");
  EXPECT_EQ(status_name(3), "permission denied");
}

TEST(SftpDecoder, SameReportsWhateverTheStreamIsSplitAt) {
  const std::string stream = sample_stream();
  const auto whole = decode(stream);
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    ASSERT_EQ(decode(stream, {cut}), whole) << "split at " << cut;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < stream.size(); ++i) every.push_back(i);
  EXPECT_EQ(decode(stream, every), whole) << "byte by byte";
}

TEST(SftpDecoder, LengthZeroOrAboveTheLimitLosesTheStreamForGood) {
  for (uint32_t bad : {0u, kPacketBytesMax + 1, 0xffffffffu}) {
    std::string s = test::status_reply(1, 0);
    s += std::string{char(bad >> 24), char(bad >> 16), char(bad >> 8), char(bad)};
    s += test::status_reply(2, 0);
    const auto seen = decode(s);
    ASSERT_EQ(seen.size(), 2u) << bad;
    EXPECT_EQ(seen[0].status, Decoder::Status::kMessage);
    EXPECT_EQ(seen[1].status, Decoder::Status::kError);
  }
  Decoder d;
  const std::string zero(4, '\0');
  EXPECT_EQ(d.next(bytes(zero)).status, Decoder::Status::kError);
  EXPECT_TRUE(d.failed());
  const std::string good = test::status_reply(1, 0);
  EXPECT_EQ(d.next(bytes(good)).status, Decoder::Status::kError);  // sticky
}

TEST(SftpDecoder, MalformedAndUnknownPacketsAreReportedAndTheStreamGoesOn) {
  std::string s;
  // A WRITE whose data length contradicts the packet length.
  s += Body(Type::kWrite).u32(1).str("h").u64(0).u32(10).raw("abc").packet();
  // A path whose length runs past the packet.
  s += Body(Type::kRemove).u32(2).u32(100).raw("short").packet();
  // A path longer than this decoder keeps.
  s += test::path_req(Type::kStat, 3, std::string(kPathBytesMax + 1, 'p'));
  // A type no version-3 peer sends, then a packet cut right after its type byte.
  s += Body(Type(99)).u32(4).raw("whatever").packet();
  s += Body(Type::kOpen).packet();
  s += test::status_reply(5, 0);
  const auto seen = decode(s);
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[0].status, Decoder::Status::kMalformed);
  EXPECT_EQ(seen[1].status, Decoder::Status::kMalformed);
  EXPECT_EQ(seen[2].status, Decoder::Status::kMalformed);
  EXPECT_EQ(seen[3].status, Decoder::Status::kUnknown);
  EXPECT_EQ(seen[4].status, Decoder::Status::kMalformed);
  EXPECT_EQ(seen[5].status, Decoder::Status::kMessage);
  EXPECT_EQ(seen[5].id, 5u);
}

TEST(SftpDecoder, FileDataIsSkippedNotBuffered) {
  // The decoder's whole state is a fixed head buffer, whatever the packet sizes.
  static_assert(sizeof(Decoder) < 16 * 1024);
  const std::string data(kPacketBytesMax - 1 - 4 - 4 - 2 - 8 - 4, 'd');
  const std::string write = test::write_req(1, "h1", 0, data);
  ASSERT_EQ(write.size(), 4u + kPacketBytesMax);
  Decoder decoder;
  auto in = bytes(write);
  // Reported once its head (type, id, handle of up to 256 bytes, offset, length) is in,
  // long before its data is.
  constexpr size_t kWriteHead = 1 + 4 + 4 + kHandleBytesMax + 8 + 4;
  const Decoder::Decoded first = decoder.next(in.first(300));
  ASSERT_EQ(first.status, Decoder::Status::kMessage);
  EXPECT_EQ(first.packet.count, data.size());
  EXPECT_EQ(first.consumed, 4 + kWriteHead);
  in = in.subspan(first.consumed);
  const Decoder::Decoded rest = decoder.next(in);
  EXPECT_EQ(rest.status, Decoder::Status::kNeedMore);
  EXPECT_EQ(rest.consumed, in.size());
  const std::string next = test::status_reply(2, 0);
  EXPECT_EQ(decoder.next(bytes(next)).status, Decoder::Status::kMessage);
}

TEST(SftpDecoder, RandomBytesNeverReadPastTheInput) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string s(size_t(rng() % 300), '\0');
    for (char& c : s) c = char(rng());
    // Plausible lengths now and then, so that packets get framed and parsed.
    if (s.size() > 8 && rng() % 2 == 0) {
      const uint32_t n = uint32_t(rng() % (s.size() - 4) + 1);
      s[0] = 0, s[1] = 0, s[2] = char(n >> 8), s[3] = char(n);
      s[4] = char(1 + rng() % 20);
    }
    std::vector<size_t> cuts;
    for (size_t i = 1; i < s.size(); i += 1 + rng() % 7) cuts.push_back(i);
    const auto seen = decode(s, cuts);
    EXPECT_EQ(seen, decode(s)) << "round " << round;
  }
}

}  // namespace
}  // namespace gh::ssh::sftp

// The SFTP tracker: an upload, a download, path operations and their status codes, both streams
// split at every byte offset, files left open, requests beyond what it follows, a lost stream.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocols/ssh/codec/sftp_tracker.hpp"
#include "tests/unit/ssh/sftp_test_support.hpp"

namespace gh::ssh::sftp {
namespace {

using test::Body;
using test::bytes;

// One line per operation, for comparisons that read like the trail.
std::string describe(const FileOp& op) {
  std::string s = std::string(op.operation) + " " + op.path;
  if (!op.path2.empty()) s += " -> " + op.path2;
  if (op.pflags != 0) s += " [" + open_flags_text(op.pflags) + "]";
  if (op.operation == "close") {
    s += op.directory ? " entries=" + std::to_string(op.entries)
                      : " read=" + std::to_string(op.bytes_read) + " written=" + std::to_string(op.bytes_written);
  }
  switch (op.outcome) {
    case FileOp::Outcome::kAnswered: s += ": " + std::string(status_name(op.status)); break;
    case FileOp::Outcome::kUnanswered: s += ": unanswered"; break;
    case FileOp::Outcome::kUntracked: s += ": untracked"; break;
  }
  return s;
}

// A conversation: requests and answers in the order they crossed the gateway.
struct Exchange {
  bool from_client;
  std::string bytes;
};

std::vector<std::string> track(const std::vector<Exchange>& conversation, size_t cut = 0, bool finish = true) {
  Tracker t;
  std::vector<std::string> ops;
  for (const auto& e : conversation) {
    std::string_view b = e.bytes;
    // Cut every message in two at `cut` (when it is inside), as channel reads might.
    const size_t at = cut > 0 && cut < b.size() ? cut : b.size();
    for (std::string_view part : {b.substr(0, at), b.substr(at)}) {
      if (part.empty()) continue;
      e.from_client ? t.client_bytes(bytes(part)) : t.server_bytes(bytes(part));
    }
    for (const auto& op : t.completed()) ops.push_back(describe(op));
    t.completed().clear();
  }
  if (finish) {
    t.finish();
    for (const auto& op : t.completed()) ops.push_back(describe(op));
  }
  return ops;
}

const std::string kH1("\x00\x00\x00\x01", 4);
const std::string kH2("\x00\x00\x00\x02", 4);

// What `put` and `get` of OpenSSH's sftp send, in short: open, several writes or reads in
// flight, their answers, close.
std::vector<Exchange> upload_and_download() {
  return {
      {true, Body(Type::kInit).u32(3).packet()},
      {false, Body(Type::kVersion).u32(3).packet()},
      {true, test::open_req(1, "/up/file.bin", kOpenWrite | kOpenCreate | kOpenTruncate)},
      {false, test::handle_reply(1, kH1)},
      {true, test::write_req(2, kH1, 0, std::string(32768, 'a')) + test::write_req(3, kH1, 32768, std::string(1000, 'b'))},
      {false, test::status_reply(2, kStatusOk) + test::status_reply(3, kStatusOk)},
      {true, test::close_req(4, kH1)},
      {false, test::status_reply(4, kStatusOk)},
      {true, test::open_req(5, "/down/file.bin", kOpenRead)},
      {false, test::handle_reply(5, kH2)},
      {true, test::read_req(6, kH2, 0, 32768) + test::read_req(7, kH2, 32768, 32768)},
      {false, test::data_reply(6, std::string(32768, 'c')) + test::data_reply(7, std::string(17, 'd'))},
      {true, test::read_req(8, kH2, 32785, 32768)},
      {false, test::status_reply(8, kStatusEof)},
      {true, test::close_req(9, kH2)},
      {false, test::status_reply(9, kStatusOk)},
  };
}

TEST(SftpTracker, UploadAndDownloadGiveOpensAndPerHandleTotals) {
  EXPECT_EQ(track(upload_and_download()),
            (std::vector<std::string>{
                "open /up/file.bin [write,create,truncate]: ok",
                "close /up/file.bin [write,create,truncate] read=0 written=33768: ok",
                "open /down/file.bin [read]: ok",
                "close /down/file.bin [read] read=32785 written=0: ok",
            }));
}

TEST(SftpTracker, PathOperationsWithTheServersStatus) {
  const std::vector<Exchange> c = {
      {true, test::path_req(Type::kRemove, 1, "/gone")},
      {false, test::status_reply(1, 2, "No such file")},
      {true, Body(Type::kRename).u32(2).str("/a").str("/b").packet()},
      {false, test::status_reply(2, kStatusOk)},
      {true, Body(Type::kExtended).u32(3).str("posix-rename@openssh.com").str("/c").str("/d").packet()},
      {false, test::status_reply(3, 3, "Permission denied")},
      {true, test::path_req(Type::kMkdir, 4, "/dir")},
      {false, test::status_reply(4, kStatusOk)},
      {true, test::path_req(Type::kStat, 5, "/dir")},
      {false, Body(Type::kAttrs).u32(5).u32(0).packet()},
      {true, test::path_req(Type::kOpendir, 6, "/dir")},
      {false, test::handle_reply(6, kH1)},
      {true, Body(Type::kReaddir).u32(7).str(kH1).packet()},
      {false, Body(Type::kName).u32(7).u32(2).str("x").str("x").u32(0).str("y").str("y").u32(0).packet()},
      {true, Body(Type::kReaddir).u32(8).str(kH1).packet()},
      {false, test::status_reply(8, kStatusEof)},
      {true, test::close_req(9, kH1)},
      {false, test::status_reply(9, kStatusOk)},
      {true, test::path_req(Type::kRmdir, 10, "/dir")},
      {false, test::status_reply(10, 4, "Failure")},
  };
  EXPECT_EQ(track(c), (std::vector<std::string>{
                          "remove /gone: no such file",
                          "rename /a -> /b: ok",
                          "rename /c -> /d: permission denied",
                          "mkdir /dir: ok",
                          "stat /dir: ok",
                          "opendir /dir: ok",
                          "close /dir entries=2: ok",
                          "rmdir /dir: failure",
                      }));
}

TEST(SftpTracker, SameOperationsWhateverTheStreamsAreSplitAt) {
  const auto c = upload_and_download();
  const auto whole = track(c);
  size_t longest = 0;
  for (const auto& e : c) longest = std::max(longest, e.bytes.size());
  for (size_t cut = 1; cut < longest; ++cut) ASSERT_EQ(track(c, cut), whole) << "cut at " << cut;
}

TEST(SftpTracker, AFailedWriteIsRecordedOnceAndTheFileStillClosed) {
  const std::vector<Exchange> c = {
      {true, test::open_req(1, "/full", kOpenWrite | kOpenCreate)},
      {false, test::handle_reply(1, kH1)},
      {true, test::write_req(2, kH1, 0, "abc") + test::write_req(3, kH1, 3, "def")},
      {false, test::status_reply(2, 4, "No space") + test::status_reply(3, 4, "No space")},
      {true, test::close_req(4, kH1)},
      {false, test::status_reply(4, kStatusOk)},
  };
  EXPECT_EQ(track(c), (std::vector<std::string>{
                          "open /full [write,create]: ok",
                          "write /full: failure",
                          "close /full [write,create] read=0 written=6: ok",
                      }));
}

TEST(SftpTracker, FilesLeftOpenAndRequestsUnansweredAreReportedAtTheEnd) {
  const std::vector<Exchange> c = {
      {true, test::open_req(1, "/open", kOpenRead)},
      {false, test::handle_reply(1, kH1)},
      {true, test::read_req(2, kH1, 0, 100)},
      {false, test::data_reply(2, std::string(100, 'z'))},
      {true, test::path_req(Type::kRemove, 3, "/pending")},
      {true, test::open_req(4, "/refused", kOpenRead)},
      {false, test::status_reply(4, 3)},
  };
  EXPECT_EQ(track(c), (std::vector<std::string>{
                          "open /open [read]: ok",
                          "open /refused [read]: permission denied",
                          "remove /pending: unanswered",
                          "close /open [read] read=100 written=0: unanswered",
                      }));
}

TEST(SftpTracker, RequestsBeyondThoseFollowedAreStillRecorded) {
  // Ids that share a slot: the second remove cannot be matched to its answer, but is recorded.
  const std::vector<Exchange> c = {
      {true, test::path_req(Type::kRemove, 1, "/first") +
                 test::path_req(Type::kRemove, 1 + Tracker::kPendingMax, "/second")},
      {false, test::status_reply(1, kStatusOk) + test::status_reply(1 + Tracker::kPendingMax, kStatusOk)},
      // Reads on a handle never opened in this stream, and an answer nobody asked for.
      {true, test::read_req(5, "unknown", 0, 10)},
      {false, test::status_reply(77, kStatusOk)},
  };
  Tracker t;
  for (const auto& e : c) e.from_client ? t.client_bytes(bytes(e.bytes)) : t.server_bytes(bytes(e.bytes));
  std::vector<std::string> ops;
  for (const auto& op : t.completed()) ops.push_back(describe(op));
  EXPECT_EQ(ops, (std::vector<std::string>{"remove /second: untracked", "remove /first: ok"}));
  EXPECT_EQ(t.untracked(), 4u);  // the second remove, its answer, the read, the stray answer
}

TEST(SftpTracker, AnOutOfRangeLengthStopsTrackingAndSaysWhy) {
  Tracker t;
  const std::string good = test::path_req(Type::kRemove, 1, "/x");
  t.client_bytes(bytes(good));
  const std::string bad("\x7f\xff\xff\xff", 4);
  t.server_bytes(bytes(bad + test::status_reply(1, kStatusOk)));
  EXPECT_EQ(t.failure(), "server SFTP packet length 2147483647 out of range");
  EXPECT_TRUE(t.completed().empty());
  EXPECT_EQ(t.packets(), 1u);
}

TEST(SftpTracker, OpenFlagsAreNamed) {
  EXPECT_EQ(open_flags_text(kOpenRead | kOpenWrite | kOpenAppend | kOpenCreate | kOpenTruncate | kOpenExclusive),
            "read,write,append,create,truncate,exclusive");
  EXPECT_EQ(open_flags_text(0), "");
}

}  // namespace
}  // namespace gh::ssh::sftp

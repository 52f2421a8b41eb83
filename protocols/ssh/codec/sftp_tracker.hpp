// Follows the two byte streams of an SFTP channel and turns them into file operations for the
// audit trail: opens with their flags, per-handle read/write totals at close, removes, renames,
// directory listings, stats..., each with the server's status. Sans-I/O and independent of
// libssh; must not depend on anything but the standard library and sftp.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/ssh/codec/sftp.hpp"

namespace gh::ssh::sftp {

struct FileOp {
  enum class Outcome : uint8_t {
    kAnswered,    // `status` is the server's answer
    kUnanswered,  // the channel ended before the answer (a file left open, say)
    kUntracked,   // more requests in flight than the tracker follows: the answer is not matched
  };
  std::string_view operation;  // "open", "close", "opendir", "remove", "rename", "mkdir", "stat",
                               // "read", "write" (a failed one)...; static storage
  std::string path;
  std::string path2;           // rename, symlink and hardlink targets
  uint32_t pflags = 0;         // open: SSH_FXF_* flags asked for
  uint64_t bytes_read = 0;     // close: file bytes the server sent for this handle
  uint64_t bytes_written = 0;  // close: file bytes the client sent for this handle
  uint64_t entries = 0;        // close of a directory: entries listed
  uint32_t status = 0;         // SSH_FX_* (kAnswered only)
  Outcome outcome = Outcome::kAnswered;
  bool directory = false;      // close: the handle was a directory's
};

// Names the SSH_FXF_* flags: "read,write,create,truncate".
std::string open_flags_text(uint32_t pflags);

class Tracker {
 public:
  // Requests in flight that are matched to their answers (OpenSSH's sftp and scp keep at most
  // 64 reads or writes outstanding). Request ids index the slots modulo this.
  static constexpr uint32_t kPendingMax = 256;
  // Open handles followed at once; reads and writes on others are counted as untracked.
  static constexpr uint32_t kHandlesMax = 256;

  Tracker();

  // Bytes from the client (requests) and from the server (answers), each in stream order.
  void client_bytes(Bytes in) { feed(client_, in, true); }
  void server_bytes(Bytes in) { feed(server_, in, false); }
  // The channel ended: files still open and requests unanswered become operations.
  void finish();

  // Operations completed since the caller last cleared the list (bounded by the requests the
  // streams carried since then: the caller clears it after every feed).
  std::vector<FileOp>& completed() { return completed_; }
  // Why the streams cannot be followed any more (a packet length out of range), or empty.
  std::string_view failure() const { return failure_; }
  // Requests or answers the tracker could not match (malformed, collisions, unknown handles).
  uint64_t untracked() const { return untracked_; }
  uint64_t packets() const { return packets_; }

 private:
  enum class Kind : uint8_t { kNone, kOpen, kOpendir, kRead, kWrite, kReaddir, kClose, kHandleOp, kPathOp };
  struct Pending {
    Kind kind = Kind::kNone;
    uint32_t id = 0;
    uint32_t handle = 0;  // index into handles_ (read, write, readdir, close, handle ops)
    uint32_t pflags = 0;  // open
    std::string_view operation;
    std::string path;
    std::string path2;
  };
  struct Handle {
    bool used = false;
    bool directory = false;
    bool failed = false;  // a read or write on it failed (recorded once)
    uint32_t pflags = 0;
    std::string handle;
    std::string path;
    uint64_t read = 0;
    uint64_t written = 0;
    uint64_t entries = 0;
  };

  void feed(Decoder& decoder, Bytes in, bool from_client);
  void on_request(const Packet& p);
  void on_reply(const Packet& p);
  Pending* claim(uint32_t id, Kind kind);
  int find_handle(std::string_view handle) const;
  void close_handle(uint32_t index, FileOp::Outcome outcome, uint32_t status);

  Decoder client_;
  Decoder server_;
  std::vector<Pending> pending_;  // kPendingMax slots
  std::vector<Handle> handles_;   // at most kHandlesMax
  std::vector<FileOp> completed_;
  std::string failure_;
  uint64_t untracked_ = 0;
  uint64_t packets_ = 0;
};

}  // namespace gh::ssh::sftp

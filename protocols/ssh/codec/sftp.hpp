// Sans-I/O decoder of the SSH File Transfer Protocol as OpenSSH speaks it (version 3,
// draft-ietf-secsh-filexfer-02): byte spans of one direction of a channel in, typed packets out.
// Must not do I/O, allocate, or depend on anything but the standard library (the clang fuzz
// build compiles it alone).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace gh::ssh::sftp {

using Bytes = std::span<const std::byte>;

// Packet types, draft-ietf-secsh-filexfer-02 section 3.
enum class Type : uint8_t {
  kInit = 1,
  kVersion = 2,
  kOpen = 3,
  kClose = 4,
  kRead = 5,
  kWrite = 6,
  kLstat = 7,
  kFstat = 8,
  kSetstat = 9,
  kFsetstat = 10,
  kOpendir = 11,
  kReaddir = 12,
  kRemove = 13,
  kMkdir = 14,
  kRmdir = 15,
  kRealpath = 16,
  kStat = 17,
  kRename = 18,
  kReadlink = 19,
  kSymlink = 20,
  kStatus = 101,
  kHandle = 102,
  kData = 103,
  kName = 104,
  kAttrs = 105,
  kExtended = 200,
  kExtendedReply = 201,
};
std::string_view type_name(uint8_t type);  // "open", "write", ...; "unknown" otherwise

// SSH_FXP_OPEN pflags (section 6.3).
inline constexpr uint32_t kOpenRead = 0x01;
inline constexpr uint32_t kOpenWrite = 0x02;
inline constexpr uint32_t kOpenAppend = 0x04;
inline constexpr uint32_t kOpenCreate = 0x08;
inline constexpr uint32_t kOpenTruncate = 0x10;
inline constexpr uint32_t kOpenExclusive = 0x20;

// SSH_FX_* status codes (section 7).
inline constexpr uint32_t kStatusOk = 0;
inline constexpr uint32_t kStatusEof = 1;
std::string_view status_name(uint32_t code);  // "ok", "eof", "no such file", ...; "error" beyond

// OpenSSH's sftp-server refuses packets above 256 KiB (sftp-common.h SFTP_MAX_MSG_LENGTH); so
// does this decoder: the stream cannot be followed past one.
inline constexpr uint32_t kPacketBytesMax = 256 * 1024;
// A packet's fields are kept up to its head: everything before the payload of WRITE and DATA,
// and two paths of up to kPathBytesMax (RENAME, SYMLINK, hardlink). The rest of a packet (file
// data, attributes, directory entries) is skipped as it streams by, never buffered.
inline constexpr size_t kPathBytesMax = 4096;
inline constexpr size_t kHandleBytesMax = 256;  // section 3.2: handles are at most 256 bytes
inline constexpr size_t kExtensionNameBytesMax = 64;
inline constexpr size_t kHeadBytesMax = 1 + 4 + (4 + kExtensionNameBytesMax) + 2 * (4 + kPathBytesMax);
static_assert(kHeadBytesMax < kPacketBytesMax);
static_assert(1 + 4 + 4 + kHandleBytesMax + 8 + 4 <= kHeadBytesMax, "a WRITE head fits");

// The fields of one packet that an audit needs. Views point into the decoder's own head buffer
// and stay valid until the next call to Decoder::next.
struct Packet {
  uint8_t type = 0;
  uint32_t length = 0;         // the packet's length word: type byte and everything after it
  uint32_t id = 0;             // request id (absent in INIT and VERSION)
  uint32_t version = 0;        // INIT, VERSION
  std::string_view path;       // OPEN, OPENDIR, REMOVE, MKDIR, RMDIR, STAT, LSTAT, SETSTAT,
                               // REALPATH, READLINK, RENAME (old), SYMLINK (link), extensions
  std::string_view path2;      // RENAME (new), SYMLINK (target), posix-rename, hardlink
  std::string_view handle;     // CLOSE, READ, WRITE, FSTAT, FSETSTAT, READDIR; HANDLE replies
  std::string_view extension;  // EXTENDED request name, e.g. "posix-rename@openssh.com"
  uint32_t pflags = 0;         // OPEN
  uint64_t offset = 0;         // READ, WRITE
  uint32_t count = 0;          // READ: bytes asked; WRITE, DATA: payload bytes; NAME: entries
  uint32_t status = 0;         // STATUS
};

class Decoder {
 public:
  enum class Status : uint8_t {
    kMessage,    // `packet` holds one packet's fields
    kNeedMore,   // all of `in` was used; no packet completed
    kMalformed,  // a packet was framed but its fields contradict it (or a path is too long for
                 // this decoder); the stream goes on with the next packet
    kUnknown,    // a packet of a type this decoder does not read; the stream goes on
    kError,      // a length word of 0 or above kPacketBytesMax: the stream is lost, and every
                 // later call returns kError
  };
  struct Decoded {
    Status status = Status::kNeedMore;
    size_t consumed = 0;  // bytes of `in` used by this call
    Packet packet;        // with kMessage: valid until the next call
  };

  // At most one packet per call. Never reads past `in`, never allocates. A packet is reported as
  // soon as its head is complete: the rest of it (file data) is skipped by later calls.
  [[nodiscard]] Decoded next(Bytes in);
  bool failed() const { return state_ == State::kFailed; }
  uint32_t length() const { return length_; }  // after kError: the length word refused

 private:
  enum class State : uint8_t { kLength, kHead, kSkip, kFailed };
  size_t head_target() const;

  State state_ = State::kLength;
  uint32_t length_ = 0;
  size_t have_ = 0;    // bytes of the length word or of the head gathered so far
  uint32_t skip_ = 0;  // bytes of the current packet still to skip
  std::array<std::byte, 4> length_bytes_{};
  std::array<std::byte, kHeadBytesMax> head_{};
};

enum class ParseStatus : uint8_t { kOk, kMalformed, kUnknownType };
// Reads the fields of a packet head of `length` bytes in all (the head may be shorter: what was
// kept of it). kMalformed: a field runs past the head, or a payload length contradicts `length`.
[[nodiscard]] ParseStatus parse(Bytes head, uint32_t length, Packet& out);

}  // namespace gh::ssh::sftp

// Sans-I/O SFTP version 3 decoder (draft-ietf-secsh-filexfer-02): framing and field reading.
// Must not do I/O, allocate, or depend on anything but the standard library.
#include "protocols/ssh/codec/sftp.hpp"

#include <algorithm>
#include <cstring>

namespace gh::ssh::sftp {
namespace {

uint32_t load_u32(const std::byte* p) {
  return (std::to_integer<uint32_t>(p[0]) << 24) | (std::to_integer<uint32_t>(p[1]) << 16) |
         (std::to_integer<uint32_t>(p[2]) << 8) | std::to_integer<uint32_t>(p[3]);
}

// Field readers of section 3 ("uint32", "uint64", "string"); a failed read leaves `ok_` false
// and every later read fails too, so a parser checks once at the end.
class Reader {
 public:
  explicit Reader(Bytes in) : in_(in) {}
  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }

  uint8_t u8() {
    if (!need(1)) return 0;
    return std::to_integer<uint8_t>(in_[pos_++]);
  }
  uint32_t u32() {
    if (!need(4)) return 0;
    const uint32_t v = load_u32(in_.data() + pos_);
    pos_ += 4;
    return v;
  }
  uint64_t u64() {
    const uint64_t high = u32();
    const uint64_t low = u32();
    return (high << 32) | low;
  }
  std::string_view string(size_t bytes_max) {
    const uint32_t n = u32();
    if (!ok_ || n > bytes_max || !need(n)) {
      ok_ = false;
      return {};
    }
    const std::string_view s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  bool need(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }

  Bytes in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::string_view type_name(uint8_t type) {
  switch (Type(type)) {
    case Type::kInit: return "init";
    case Type::kVersion: return "version";
    case Type::kOpen: return "open";
    case Type::kClose: return "close";
    case Type::kRead: return "read";
    case Type::kWrite: return "write";
    case Type::kLstat: return "lstat";
    case Type::kFstat: return "fstat";
    case Type::kSetstat: return "setstat";
    case Type::kFsetstat: return "fsetstat";
    case Type::kOpendir: return "opendir";
    case Type::kReaddir: return "readdir";
    case Type::kRemove: return "remove";
    case Type::kMkdir: return "mkdir";
    case Type::kRmdir: return "rmdir";
    case Type::kRealpath: return "realpath";
    case Type::kStat: return "stat";
    case Type::kRename: return "rename";
    case Type::kReadlink: return "readlink";
    case Type::kSymlink: return "symlink";
    case Type::kStatus: return "status";
    case Type::kHandle: return "handle";
    case Type::kData: return "data";
    case Type::kName: return "name";
    case Type::kAttrs: return "attrs";
    case Type::kExtended: return "extended";
    case Type::kExtendedReply: return "extended-reply";
  }
  return "unknown";
}

std::string_view status_name(uint32_t code) {
  switch (code) {
    case 0: return "ok";
    case 1: return "eof";
    case 2: return "no such file";
    case 3: return "permission denied";
    case 4: return "failure";
    case 5: return "bad message";
    case 6: return "no connection";
    case 7: return "connection lost";
    case 8: return "operation unsupported";
  }
  return "error";
}

size_t Decoder::head_target() const {
  if (have_ == 0) return 1;  // the type byte decides how much is kept
  constexpr size_t kIdHandle = 1 + 4 + 4 + kHandleBytesMax;
  size_t keep = kHeadBytesMax;
  switch (Type(std::to_integer<uint8_t>(head_[0]))) {
    case Type::kWrite:
    case Type::kRead:
      keep = kIdHandle + 8 + 4;  // id, handle, offset, length: never the payload
      break;
    case Type::kData:
    case Type::kName:
    case Type::kStatus:
      keep = 1 + 4 + 4;  // id and the payload length, entry count or status code
      break;
    case Type::kHandle:
    case Type::kClose:
    case Type::kFstat:
    case Type::kReaddir:
    case Type::kFsetstat:
      keep = kIdHandle;
      break;
    case Type::kInit:
    case Type::kVersion:
    case Type::kAttrs:
    case Type::kExtendedReply:
      keep = 1 + 4;
      break;
    default:
      break;
  }
  return std::min<size_t>(keep, length_);
}

Decoder::Decoded Decoder::next(Bytes in) {
  Decoded out;
  // Each pass finishes a packet, fails, or uses up `in`: bounded by the input's size.
  while (true) {
    const Bytes rest = in.subspan(out.consumed);
    switch (state_) {
      case State::kFailed:
        out.status = Status::kError;
        return out;
      case State::kLength: {
        if (rest.empty()) return out;
        const size_t n = std::min(rest.size(), length_bytes_.size() - have_);
        std::memcpy(length_bytes_.data() + have_, rest.data(), n);
        have_ += n;
        out.consumed += n;
        if (have_ < length_bytes_.size()) return out;
        length_ = load_u32(length_bytes_.data());
        have_ = 0;
        if (length_ == 0 || length_ > kPacketBytesMax) {
          state_ = State::kFailed;
          out.status = Status::kError;
          return out;
        }
        state_ = State::kHead;
        break;
      }
      case State::kHead: {
        if (rest.empty()) return out;
        const size_t n = std::min(rest.size(), head_target() - have_);
        std::memcpy(head_.data() + have_, rest.data(), n);
        have_ += n;
        out.consumed += n;
        if (have_ < head_target()) break;  // more input, or the type byte widened the target
        const Bytes head(head_.data(), have_);
        skip_ = length_ - uint32_t(have_);
        have_ = 0;
        state_ = skip_ > 0 ? State::kSkip : State::kLength;
        switch (parse(head, length_, out.packet)) {
          case ParseStatus::kOk: out.status = Status::kMessage; break;
          case ParseStatus::kMalformed: out.status = Status::kMalformed; break;
          case ParseStatus::kUnknownType: out.status = Status::kUnknown; break;
        }
        return out;
      }
      case State::kSkip: {
        if (rest.empty()) return out;
        const uint32_t n = uint32_t(std::min<size_t>(skip_, rest.size()));
        skip_ -= n;
        out.consumed += n;
        if (skip_ == 0) state_ = State::kLength;
        break;
      }
    }
  }
}

ParseStatus parse(Bytes head, uint32_t length, Packet& out) {
  out = Packet{};
  out.length = length;
  Reader r(head);
  out.type = r.u8();
  if (!r.ok()) return ParseStatus::kMalformed;
  const auto path = [&] { return r.string(kPathBytesMax); };
  const auto handle = [&] { return r.string(kHandleBytesMax); };
  switch (Type(out.type)) {
    case Type::kInit:
    case Type::kVersion:
      out.version = r.u32();
      break;
    case Type::kOpen:
      out.id = r.u32();
      out.path = path();
      out.pflags = r.u32();
      break;
    case Type::kClose:
    case Type::kFstat:
    case Type::kReaddir:
    case Type::kFsetstat:
    case Type::kHandle:
      out.id = r.u32();
      out.handle = handle();
      break;
    case Type::kRead:
      out.id = r.u32();
      out.handle = handle();
      out.offset = r.u64();
      out.count = r.u32();
      break;
    case Type::kWrite:
      out.id = r.u32();
      out.handle = handle();
      out.offset = r.u64();
      out.count = r.u32();
      // The payload is the rest of the packet, exactly (section 6.4).
      if (r.ok() && uint64_t(r.pos()) + out.count != length) return ParseStatus::kMalformed;
      break;
    case Type::kData:
      out.id = r.u32();
      out.count = r.u32();
      if (r.ok() && uint64_t(r.pos()) + out.count != length) return ParseStatus::kMalformed;
      break;
    case Type::kLstat:
    case Type::kStat:
    case Type::kSetstat:
    case Type::kOpendir:
    case Type::kRemove:
    case Type::kMkdir:
    case Type::kRmdir:
    case Type::kRealpath:
    case Type::kReadlink:
      out.id = r.u32();
      out.path = path();
      break;
    case Type::kRename:
    case Type::kSymlink:
      out.id = r.u32();
      out.path = path();
      out.path2 = path();
      break;
    case Type::kStatus:
      out.id = r.u32();
      out.status = r.u32();  // the message and language tag that follow are not kept
      break;
    case Type::kName:
      out.id = r.u32();
      out.count = r.u32();
      break;
    case Type::kAttrs:
    case Type::kExtendedReply:
      out.id = r.u32();
      break;
    case Type::kExtended:
      out.id = r.u32();
      out.extension = r.string(kExtensionNameBytesMax);
      if (!r.ok()) return ParseStatus::kMalformed;
      // OpenSSH's extensions that name paths or handles (PROTOCOL, section 4).
      if (out.extension == "posix-rename@openssh.com" || out.extension == "hardlink@openssh.com") {
        out.path = path();
        out.path2 = path();
      } else if (out.extension == "statvfs@openssh.com" || out.extension == "lsetstat@openssh.com" ||
                 out.extension == "expand-path@openssh.com") {
        out.path = path();
      } else if (out.extension == "fsync@openssh.com" || out.extension == "fstatvfs@openssh.com") {
        out.handle = handle();
      }
      break;
    default:
      return ParseStatus::kUnknownType;
  }
  return r.ok() ? ParseStatus::kOk : ParseStatus::kMalformed;
}

}  // namespace gh::ssh::sftp

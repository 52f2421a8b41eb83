// SFTP request/answer matching into file operations (draft-ietf-secsh-filexfer-02, sections 6-7).
// Sans-I/O: bytes in, operations out.
#include "protocols/ssh/codec/sftp_tracker.hpp"

#include <string>

namespace gh::ssh::sftp {

std::string open_flags_text(uint32_t pflags) {
  static constexpr std::pair<uint32_t, const char*> kNames[] = {
      {kOpenRead, "read"},       {kOpenWrite, "write"},       {kOpenAppend, "append"},
      {kOpenCreate, "create"},   {kOpenTruncate, "truncate"}, {kOpenExclusive, "exclusive"}};
  std::string text;
  for (const auto& [flag, name] : kNames) {
    if ((pflags & flag) == 0) continue;
    if (!text.empty()) text += ',';
    text += name;
  }
  return text;
}

Tracker::Tracker() : pending_(kPendingMax) {}

void Tracker::feed(Decoder& decoder, Bytes in, bool from_client) {
  // Each step consumes input or ends the loop: bounded by the input's size.
  while (!in.empty() && failure_.empty()) {
    const Decoder::Decoded step = decoder.next(in);
    in = in.subspan(step.consumed);
    switch (step.status) {
      case Decoder::Status::kError:
        failure_ = std::string(from_client ? "client" : "server") + " SFTP packet length " +
                   std::to_string(decoder.length()) + " out of range";
        return;
      case Decoder::Status::kNeedMore:
        break;
      case Decoder::Status::kMalformed:
        ++packets_;
        ++untracked_;  // framing still holds: the next packet starts where the length said
        break;
      case Decoder::Status::kUnknown:
        ++packets_;
        break;
      case Decoder::Status::kMessage:
        ++packets_;
        if (from_client) {
          on_request(step.packet);
        } else {
          on_reply(step.packet);
        }
        break;
    }
  }
}

Tracker::Pending* Tracker::claim(uint32_t id, Kind kind) {
  Pending& slot = pending_[id % kPendingMax];
  if (slot.kind != Kind::kNone) return nullptr;  // a collision, or more in flight than followed
  slot.kind = kind;
  slot.id = id;
  return &slot;
}

int Tracker::find_handle(std::string_view handle) const {
  for (size_t i = 0; i < handles_.size(); ++i) {
    if (handles_[i].used && handles_[i].handle == handle) return int(i);
  }
  return -1;
}

void Tracker::on_request(const Packet& p) {
  // A request that names a path: remembered until its answer, or recorded at once as untracked
  // when it cannot be (the operation is in the trail either way).
  const auto path_op = [&](std::string_view operation, Kind kind = Kind::kPathOp) {
    Pending* slot = claim(p.id, kind);
    if (slot == nullptr) {
      ++untracked_;
      completed_.push_back(FileOp{.operation = operation,
                                  .path = std::string(p.path),
                                  .path2 = std::string(p.path2),
                                  .pflags = p.pflags,
                                  .outcome = FileOp::Outcome::kUntracked});
      return;
    }
    slot->operation = operation;
    slot->pflags = p.pflags;
    slot->path = p.path;
    slot->path2 = p.path2;
  };
  // A request on an open handle.
  const auto handle_op = [&](Kind kind, std::string_view operation = {}) {
    const int h = find_handle(p.handle);
    if (h < 0) {
      ++untracked_;
      return;
    }
    if (kind == Kind::kWrite) handles_[size_t(h)].written += p.count;  // as sent toward the host
    Pending* slot = claim(p.id, kind);
    if (slot == nullptr) {
      ++untracked_;
      return;
    }
    slot->handle = uint32_t(h);
    slot->operation = operation;
  };
  switch (Type(p.type)) {
    case Type::kOpen: return path_op("open", Kind::kOpen);
    case Type::kOpendir: return path_op("opendir", Kind::kOpendir);
    case Type::kRead: return handle_op(Kind::kRead, "read");
    case Type::kWrite: return handle_op(Kind::kWrite, "write");
    case Type::kReaddir: return handle_op(Kind::kReaddir, "readdir");
    case Type::kClose: return handle_op(Kind::kClose);
    case Type::kFstat: return handle_op(Kind::kHandleOp, "fstat");
    case Type::kFsetstat: return handle_op(Kind::kHandleOp, "fsetstat");
    case Type::kRemove: return path_op("remove");
    case Type::kMkdir: return path_op("mkdir");
    case Type::kRmdir: return path_op("rmdir");
    case Type::kRename: return path_op("rename");
    case Type::kSymlink: return path_op("symlink");
    case Type::kSetstat: return path_op("setstat");
    case Type::kStat: return path_op("stat");
    case Type::kLstat: return path_op("lstat");
    case Type::kRealpath: return path_op("realpath");
    case Type::kReadlink: return path_op("readlink");
    case Type::kExtended:
      if (p.extension == "posix-rename@openssh.com") return path_op("rename");
      if (p.extension == "hardlink@openssh.com") return path_op("hardlink");
      if (p.extension == "lsetstat@openssh.com") return path_op("lsetstat");
      if (p.extension == "statvfs@openssh.com") return path_op("statvfs");
      if (p.extension == "expand-path@openssh.com") return path_op("expand-path");
      if (p.extension == "fsync@openssh.com") return handle_op(Kind::kHandleOp, "fsync");
      return;  // limits, users-groups-by-id...: no file named
    default:
      return;  // INIT; answers sent the wrong way are the server's to refuse
  }
}

void Tracker::on_reply(const Packet& p) {
  const Type type = Type(p.type);
  if (type == Type::kVersion) return;
  Pending& slot = pending_[p.id % kPendingMax];
  if (slot.kind == Kind::kNone || slot.id != p.id) {
    ++untracked_;
    return;
  }
  // STATUS answers every request; the other answers carry success (section 7).
  const uint32_t status = type == Type::kStatus ? p.status : kStatusOk;
  switch (slot.kind) {
    case Kind::kOpen:
    case Kind::kOpendir: {
      const bool opendir = slot.kind == Kind::kOpendir;
      completed_.push_back(FileOp{.operation = opendir ? "opendir" : "open",
                                  .path = slot.path,
                                  .path2 = {},
                                  .pflags = slot.pflags,
                                  .status = status,
                                  .directory = opendir});
      if (type != Type::kHandle) break;
      Handle* h = nullptr;
      for (Handle& candidate : handles_) {
        if (!candidate.used) {
          h = &candidate;
          break;
        }
      }
      if (h == nullptr && handles_.size() < kHandlesMax) h = &handles_.emplace_back();
      if (h == nullptr) {
        ++untracked_;
        break;
      }
      *h = Handle{.used = true,
                  .directory = opendir,
                  .pflags = slot.pflags,
                  .handle = std::string(p.handle),
                  .path = std::move(slot.path)};
      break;
    }
    case Kind::kRead:
    case Kind::kWrite: {
      Handle& h = handles_[slot.handle];
      if (slot.kind == Kind::kRead && type == Type::kData) h.read += p.count;
      // End of file answers a read past the end; any other failure is recorded, once a handle.
      if (status != kStatusOk && status != kStatusEof && !h.failed && h.used) {
        h.failed = true;
        completed_.push_back(FileOp{.operation = slot.operation, .path = h.path, .path2 = {}, .status = status});
      }
      break;
    }
    case Kind::kReaddir:
      if (type == Type::kName) handles_[slot.handle].entries += p.count;
      break;
    case Kind::kClose:
      close_handle(slot.handle, FileOp::Outcome::kAnswered, status);
      break;
    case Kind::kHandleOp:
      if (handles_[slot.handle].used) {
        completed_.push_back(FileOp{.operation = slot.operation,
                                    .path = handles_[slot.handle].path,
                                    .path2 = {},
                                    .status = status});
      }
      break;
    case Kind::kPathOp:
      completed_.push_back(FileOp{.operation = slot.operation,
                                  .path = std::move(slot.path),
                                  .path2 = std::move(slot.path2),
                                  .status = status});
      break;
    case Kind::kNone:
      break;
  }
  slot = Pending{};
}

void Tracker::close_handle(uint32_t index, FileOp::Outcome outcome, uint32_t status) {
  Handle& h = handles_[index];
  if (!h.used) return;
  completed_.push_back(FileOp{.operation = "close",
                              .path = std::move(h.path),
                              .path2 = {},
                              .pflags = h.pflags,
                              .bytes_read = h.read,
                              .bytes_written = h.written,
                              .entries = h.entries,
                              .status = status,
                              .outcome = outcome,
                              .directory = h.directory});
  h = Handle{};
}

void Tracker::finish() {
  for (Pending& slot : pending_) {
    if (slot.kind == Kind::kPathOp || slot.kind == Kind::kOpen || slot.kind == Kind::kOpendir) {
      completed_.push_back(FileOp{.operation = slot.operation,
                                  .path = std::move(slot.path),
                                  .path2 = std::move(slot.path2),
                                  .pflags = slot.pflags,
                                  .outcome = FileOp::Outcome::kUnanswered,
                                  .directory = slot.kind == Kind::kOpendir});
    }
    slot = Pending{};
  }
  for (uint32_t i = 0; i < handles_.size(); ++i) {
    if (handles_[i].used) close_handle(i, FileOp::Outcome::kUnanswered, 0);
  }
}

}  // namespace gh::ssh::sftp

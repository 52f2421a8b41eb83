// SFTP file operations as trail records (record/FORMAT.md, file_operation).
// Must not do I/O or touch libssh.
#include "protocols/ssh/sftp_channel.hpp"

#include <fmt/format.h>

namespace gh::ssh {

void SftpAudit::fill(const sftp::FileOp& op, Record& out) const {
  using rec::FieldTag;
  size_t n = 0;
  out.fields[n++] = {FieldTag::kChannel, channel_};
  out.fields[n++] = {FieldTag::kFileOperation, op.operation};
  out.fields[n++] = {FieldTag::kPath, op.path};
  if (!op.path2.empty()) out.fields[n++] = {FieldTag::kTargetPath, op.path2};
  out.flags = sftp::open_flags_text(op.pflags);
  if (!out.flags.empty()) out.fields[n++] = {FieldTag::kOpenFlags, out.flags};
  if (op.operation == "close" && op.directory) {
    out.entries = fmt::format("{}", op.entries);
    out.fields[n++] = {FieldTag::kEntries, out.entries};
  } else if (op.operation == "close") {
    out.read = fmt::format("{}", op.bytes_read);
    out.written = fmt::format("{}", op.bytes_written);
    out.fields[n++] = {FieldTag::kBytesRead, out.read};
    out.fields[n++] = {FieldTag::kBytesWritten, out.written};
  }
  std::string_view status = "unanswered";
  if (op.outcome == sftp::FileOp::Outcome::kAnswered) status = sftp::status_name(op.status);
  if (op.outcome == sftp::FileOp::Outcome::kUntracked) status = "untracked";
  out.fields[n++] = {FieldTag::kFileStatus, status};
  out.count = n;
}

}  // namespace gh::ssh

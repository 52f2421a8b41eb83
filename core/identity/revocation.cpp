// Revoked tokens, subjects and actors: immutable sets, their publication and their file.
// Must not depend on protocols or the engine; file I/O happens on control-plane threads only.
#include "core/identity/revocation.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/identity/files.hpp"
#include "core/identity/json_object.hpp"

namespace gh::identity {
namespace {

using json = nlohmann::json;

// The revocations file may hold every entry at its largest.
constexpr size_t kRevocationsFileBytesMax =
    kRevocationsMax * (kRevocationValueBytesMax + kRevocationReasonBytesMax + 512);

std::string key_of(RevocationKind kind, std::string_view value) {
  std::string key;
  key.reserve(value.size() + 1);
  key.push_back(static_cast<char>('0' + static_cast<int>(kind)));
  key.append(value);
  return key;
}

}  // namespace

std::string_view revocation_kind_name(RevocationKind kind) {
  switch (kind) {
    case RevocationKind::kTokenId:
      return "jti";
    case RevocationKind::kSubject:
      return "subject";
    case RevocationKind::kActor:
      return "actor";
  }
  return "?";
}

std::optional<RevocationKind> parse_revocation_kind(std::string_view name) {
  if (name == "jti") return RevocationKind::kTokenId;
  if (name == "subject") return RevocationKind::kSubject;
  if (name == "actor") return RevocationKind::kActor;
  return std::nullopt;
}

RevocationSet::RevocationSet(std::vector<Revocation> entries) : entries_(std::move(entries)) {
  by_key_.reserve(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) {
    by_key_.emplace(key_of(entries_[i].kind, entries_[i].value), i);  // the first one wins
  }
}

const Revocation* RevocationSet::lookup(RevocationKind kind, const std::string& value) const {
  if (by_key_.empty() || value.empty()) return nullptr;
  const auto it = by_key_.find(key_of(kind, value));
  return it == by_key_.end() ? nullptr : &entries_[it->second];
}

bool RevocationSet::contains(RevocationKind kind, std::string_view value) const {
  return by_key_.contains(key_of(kind, value));
}

const Revocation* RevocationSet::find(const Identity& identity) const {
  if (by_key_.empty()) return nullptr;
  if (const Revocation* r = lookup(RevocationKind::kTokenId, identity.token_id)) return r;
  for (const std::string& ancestor : identity.lineage) {
    if (const Revocation* r = lookup(RevocationKind::kTokenId, ancestor)) return r;
  }
  if (const Revocation* r = lookup(RevocationKind::kSubject, identity.subject)) return r;
  if (const Revocation* r = lookup(RevocationKind::kActor, identity.subject)) return r;
  for (const std::string& actor : identity.actors) {
    if (const Revocation* r = lookup(RevocationKind::kActor, actor)) return r;
  }
  return nullptr;
}

std::string describe(const Revocation& r) {
  const char* what = r.kind == RevocationKind::kTokenId   ? "token jti"
                     : r.kind == RevocationKind::kSubject ? "subject"
                                                          : "actor";
  std::string text = fmt::format("{} {} was revoked at {}", what, quote(r.value), r.revoked_at_s);
  if (!r.revoked_by.empty()) text += " by " + quote(r.revoked_by);
  if (!r.reason.empty()) text += ": " + quote(r.reason, 200);
  return text;
}

std::string revocation_to_json_line(const Revocation& r) {
  const json line = {{"kind", revocation_kind_name(r.kind)},
                     {"value", r.value},
                     {"revoked_at", r.revoked_at_s},
                     {"revoked_by", r.revoked_by},
                     {"reason", r.reason}};
  return line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<Revocation> revocation_from_json(std::string_view line) {
  auto object = parse_json_object(line, "revocation");
  if (!object) return std::unexpected(object.error());
  const auto text = [&](const char* name) -> const std::string* {
    const auto it = object->find(name);
    return it == object->end() ? nullptr : it->get_ptr<const std::string*>();
  };
  Revocation r;
  const std::string* kind = text("kind");
  const auto parsed = kind ? parse_revocation_kind(*kind) : std::nullopt;
  if (!parsed) return fail("revocation: \"kind\" is not jti, subject or actor");
  r.kind = *parsed;
  const std::string* value = text("value");
  if (value == nullptr || value->empty() || value->size() > kRevocationValueBytesMax) {
    return fail("revocation: \"value\" is not a non-empty string of bounded size");
  }
  r.value = *value;
  const auto at = object->find("revoked_at");
  if (at == object->end() || !at->is_number_integer()) {
    return fail("revocation: \"revoked_at\" is not an integer");
  }
  r.revoked_at_s = at->get<int64_t>();
  if (const std::string* by = text("revoked_by")) r.revoked_by = *by;
  if (const std::string* reason = text("reason")) r.reason = *reason;
  return r;
}

Result<std::unique_ptr<RevocationRegistry>> RevocationRegistry::open(std::filesystem::path file) {
  std::unique_ptr<RevocationRegistry> registry(new RevocationRegistry(std::move(file)));
  if (registry->file_.empty()) return registry;
  std::error_code ec;
  if (!std::filesystem::exists(registry->file_, ec)) {
    if (ec) return fail(fmt::format("{}: {}", registry->file_.string(), ec.message()));
    return registry;
  }
  auto text = read_file(registry->file_, kRevocationsFileBytesMax);
  if (!text) return std::unexpected(text.error());
  std::vector<Revocation> entries;
  size_t at = 0;
  size_t line_number = 0;
  while (at < text->size()) {
    ++line_number;
    const size_t end = text->find('\n', at);
    if (end == std::string::npos) {
      // A torn append: that revocation was never confirmed. Cut it off, so that the next append
      // starts on a line of its own.
      if (::truncate(registry->file_.c_str(), off_t(at)) != 0) {
        return fail(fmt::format("{}: cannot cut a torn last line: {}", registry->file_.string(),
                                std::strerror(errno)));
      }
      break;
    }
    const std::string_view line(text->data() + at, end - at);
    at = end + 1;
    if (line.empty()) continue;
    auto r = revocation_from_json(line);
    if (!r) {
      return fail(
          fmt::format("{}: line {}: {}", registry->file_.string(), line_number, r.error().message));
    }
    if (entries.size() >= kRevocationsMax) {
      return fail(
          fmt::format("{}: more than {} revocations", registry->file_.string(), kRevocationsMax));
    }
    entries.push_back(std::move(*r));
  }
  registry->current_.store(std::make_shared<const RevocationSet>(std::move(entries)),
                           std::memory_order_release);
  return registry;
}

Result<bool> RevocationRegistry::add(Revocation revocation) {
  if (revocation.value.empty() || revocation.value.size() > kRevocationValueBytesMax) {
    return fail(fmt::format("a revoked value is 1..{} bytes", kRevocationValueBytesMax));
  }
  if (revocation.reason.size() > kRevocationReasonBytesMax) {
    return fail(fmt::format("a revocation reason is at most {} bytes", kRevocationReasonBytesMax));
  }
  std::lock_guard lock(write_mutex_);
  const std::shared_ptr<const RevocationSet> old = current();
  if (old->contains(revocation.kind, revocation.value)) return false;
  if (old->entries().size() >= kRevocationsMax) {
    return fail(fmt::format("the revocation list is full ({} entries)", kRevocationsMax));
  }
  if (!file_.empty()) {
    // Durable before it is published: a revocation that was answered survives a restart.
    const std::string line = revocation_to_json_line(revocation);
    const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
      return fail(fmt::format("{}: cannot open: {}", file_.string(), std::strerror(errno)));
    size_t written = 0;
    while (written < line.size()) {
      const ssize_t n = ::write(fd, line.data() + written, line.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int e = errno;
        ::close(fd);
        return fail(fmt::format("{}: write failed: {}", file_.string(), std::strerror(e)));
      }
      written += size_t(n);
    }
    if (::fsync(fd) != 0) {
      const int e = errno;
      ::close(fd);
      return fail(fmt::format("{}: fsync failed: {}", file_.string(), std::strerror(e)));
    }
    ::close(fd);
  }
  std::vector<Revocation> entries = old->entries();
  entries.push_back(std::move(revocation));
  current_.store(std::make_shared<const RevocationSet>(std::move(entries)),
                 std::memory_order_release);
  // After the store: a reader that sees the new epoch loads this set (or a newer one).
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

const RevocationSet& RevocationView::get() {
  if (registry_ != nullptr) {
    const uint64_t epoch = registry_->epoch().load(std::memory_order_acquire);
    if (epoch != seen_ || first_) {
      set_ = registry_->current();
      seen_ = epoch;
      first_ = false;
    }
  }
  return *set_;
}

}  // namespace gh::identity

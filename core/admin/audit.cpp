// In-memory audit sink (tests, and gateways that do not record).
// Must not depend on record/ or on the HTTP library.
#include "core/admin/audit.hpp"

namespace gh::admin {

Result<void> MemoryAuditSink::record(const AuditEntry& entry) {
  std::lock_guard lock(mutex_);
  entries_.push_back(entry);
  return {};
}

std::vector<AuditEntry> MemoryAuditSink::entries() const {
  std::lock_guard lock(mutex_);
  return entries_;
}

}  // namespace gh::admin

// Export bundles (record/FORMAT.md, "Export bundle"): chosen records with what proves them on
// their own (Merkle inclusion proofs and the signed seal or checkpoint over each segment's
// records), and the check of such a bundle without the rest of the trail.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "core/error.hpp"
#include "record/keys.hpp"

namespace gh::rec {

struct ExportSummary {
  uint64_t records = 0;
  uint64_t segments = 0;
  uint64_t sessions = 0;
  // Records not yet covered by a signed checkpoint or seal (the newest moments of a running
  // gateway): left out, counted here.
  uint64_t uncovered = 0;
};

// Writes the records of `sessions` found in the trail `dir` to `out_file` (replaced). Only
// those records' bytes go out; of every other record only its chain hash appears, inside proofs.
[[nodiscard]] Result<ExportSummary> export_bundle(const std::string& dir,
                                                  const std::set<uint64_t>& sessions,
                                                  const std::string& out_file);

struct BundleReport {
  uint64_t records = 0;
  uint64_t segments = 0;
  uint64_t sessions = 0;
  std::optional<uint64_t> failed_line;  // from 1
  std::string what;                     // why it failed
  bool ok() const { return !failed_line.has_value(); }
};

// Checks every line of a bundle: each root's signature with `keyring`, each record's chain hash
// from its bytes and previous hash, and its inclusion proof against its segment's signed root.
// Fails only when the file cannot be read; everything wrong inside is in the report.
[[nodiscard]] Result<BundleReport> verify_bundle(const std::string& file, const Keyring& keyring);

}  // namespace gh::rec

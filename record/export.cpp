// Export bundles (record/FORMAT.md, "Export bundle"): chosen records with what proves them on
// their own, and the check of such a bundle without the rest of the trail.
#include "record/export.hpp"

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_set>
#include <vector>

#include "core/base64.hpp"
#include "core/identity/files.hpp"
#include "record/control.hpp"
#include "record/hash.hpp"
#include "record/le.hpp"
#include "record/merkle.hpp"
#include "record/segment.hpp"

namespace gh::rec {

namespace {

std::string b64(std::span<const std::byte> bytes) {
  return base64_encode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::optional<std::vector<std::byte>> unb64(const nlohmann::json& j) {
  if (!j.is_string()) return std::nullopt;
  auto raw = base64_decode(j.get<std::string>());
  if (!raw) return std::nullopt;
  std::vector<std::byte> out(raw->size());
  if (!raw->empty()) std::memcpy(out.data(), raw->data(), raw->size());
  return out;
}

std::optional<ChainHash> parse_hash(const nlohmann::json& j) {
  if (!j.is_string() || j.get<std::string>().size() != 64) return std::nullopt;
  const std::string text = j.get<std::string>();
  ChainHash h{};
  for (size_t i = 0; i < h.size(); ++i) {
    unsigned v = 0;
    if (std::sscanf(text.c_str() + 2 * i, "%2x", &v) != 1) return std::nullopt;
    h[i] = static_cast<uint8_t>(v);
  }
  if (to_hex(h) != text) return std::nullopt;  // lowercase hex only
  return h;
}

std::string join_path(const std::string& a, const std::string& b) {
  return a.empty() || a.back() == '/' ? a + b : a + "/" + b;
}

}  // namespace

Result<ExportSummary> export_bundle(const std::string& dir, const std::set<uint64_t>& sessions,
                                    const std::string& out_file) {
  auto shards = list_shards(dir);
  if (!shards) return std::unexpected(shards.error());
  ExportSummary summary;
  std::unordered_set<uint64_t> seen_sessions;
  std::string out;
  for (const uint16_t shard : *shards) {
    const std::string shard_dir = join_path(dir, shard_dir_name(shard));
    auto sequences = list_segments(shard_dir);
    if (!sequences) return std::unexpected(sequences.error());
    for (const uint64_t sequence : *sequences) {
      auto bytes = read_whole_file(join_path(shard_dir, segment_file_name(sequence)));
      if (!bytes) return std::unexpected(bytes.error());
      auto header = parse_segment_header(*bytes);
      if (!header) {
        return fail(fmt::format("{}/{}: {}", shard_dir_name(shard), segment_file_name(sequence),
                                header.error().message));
      }
      struct Chosen {
        uint64_t index;
        uint64_t offset;
        size_t length;
        ChainHash previous;
      };
      std::vector<ChainHash> hashes;
      std::vector<Chosen> chosen;
      std::optional<std::pair<uint64_t, uint64_t>> root;  // (index, offset+length) of the widest
      ChainHash previous = header->previous_hash;
      const SegmentScan scan = scan_segment_records(
          *bytes, header->previous_hash, true, [&](const ScannedRecord& r) {
            const size_t length = r.view.body.size() + limits::chain_hash_bytes;
            if (r.view.type == EventType::kSeal || r.view.type == EventType::kCheckpoint) {
              root = {r.index, r.offset};
            } else if (!is_control_type(r.view.type) && sessions.contains(r.view.session_id)) {
              chosen.push_back({r.index, r.offset, length, previous});
              seen_sessions.insert(r.view.session_id);
            }
            hashes.push_back(r.view.stored_hash);
            previous = r.view.stored_hash;
            return true;
          });
      if (scan.end == ScanEnd::kDamaged) {
        return fail(fmt::format("{}/{}: record {}: {} (run gatehouse verify)", shard_dir_name(shard),
                                segment_file_name(sequence), scan.records, scan.reason));
      }
      if (chosen.empty()) continue;
      // The seal, or else the newest checkpoint, signs the root over the records before it.
      const uint64_t covered = root ? root->first : 0;
      const MerkleTree tree{std::span<const ChainHash>(hashes).first(covered)};
      bool segment_written = false;
      for (const Chosen& c : chosen) {
        if (c.index >= covered) {
          ++summary.uncovered;
          continue;
        }
        if (!segment_written) {
          const uint32_t root_length = le::load<uint32_t>(bytes->data() + root->second);
          out += nlohmann::json{{"kind", "segment"},
                                {"shard", shard},
                                {"segment", sequence},
                                {"header", b64(std::span(*bytes).first(limits::segment_header_bytes))},
                                {"root_index", root->first},
                                {"root", b64(std::span(*bytes).subspan(root->second, root_length))}}
                     .dump() +
                 "\n";
          segment_written = true;
          ++summary.segments;
        }
        nlohmann::json proof = nlohmann::json::array();
        for (const MerkleHash& h : tree.inclusion_proof(c.index)) proof.push_back(to_hex(h));
        out += nlohmann::json{{"kind", "record"},
                              {"shard", shard},
                              {"segment", sequence},
                              {"index", c.index},
                              {"previous", to_hex(c.previous)},
                              {"bytes", b64(std::span(*bytes).subspan(c.offset, c.length))},
                              {"proof", std::move(proof)}}
                   .dump() +
               "\n";
        ++summary.records;
      }
    }
  }
  summary.sessions = seen_sessions.size();
  if (auto written = identity::write_file_atomic(out_file, out, 0640, /*replace=*/true); !written) {
    return std::unexpected(written.error());
  }
  return summary;
}

Result<BundleReport> verify_bundle(const std::string& file, const Keyring& keyring) {
  auto text = identity::read_file(file, size_t{1} << 34);
  if (!text) return std::unexpected(text.error());
  BundleReport report;
  struct Root {
    ControlRecord control;
    uint64_t index = 0;
  };
  std::map<std::pair<uint16_t, uint64_t>, Root> roots;
  std::unordered_set<uint64_t> sessions;
  ChainHasher hasher;
  uint64_t line_number = 0;
  const auto failed = [&](std::string what) {
    report.failed_line = line_number;
    report.what = std::move(what);
    return report;
  };
  const std::string_view all = *text;
  for (size_t at = 0; at < all.size();) {
    size_t end = all.find('\n', at);
    if (end == std::string_view::npos) end = all.size();
    const std::string_view line = all.substr(at, end - at);
    at = end + 1;
    ++line_number;
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return failed("not a JSON object");
    const auto kind = j.find("kind");
    const auto shard = j.find("shard");
    const auto segment = j.find("segment");
    if (kind == j.end() || !kind->is_string() || shard == j.end() ||
        !shard->is_number_unsigned() || shard->get<uint64_t>() > UINT16_MAX ||
        segment == j.end() || !segment->is_number_unsigned()) {
      return failed("expected kind, shard and segment");
    }
    const auto key = std::make_pair(shard->get<uint16_t>(), segment->get<uint64_t>());
    const std::string where = fmt::format("{}/{}", shard_dir_name(key.first),
                                          segment_file_name(key.second));
    if (kind->get<std::string>() == "segment") {
      auto header_bytes = unb64(j.value("header", nlohmann::json()));
      auto root_bytes = unb64(j.value("root", nlohmann::json()));
      if (!header_bytes || !root_bytes) return failed("header and root must be base64");
      auto header = parse_segment_header(*header_bytes);
      if (!header) return failed(where + ": header: " + header.error().message);
      auto view = decode_record(*root_bytes);
      if (!view) return failed(where + ": root: " + view.error().message);
      auto control = decode_control(*view);
      if (!control || control->type == EventType::kRecovery) {
        return failed(where + ": root is not a seal or checkpoint");
      }
      if (header->shard != key.first || header->sequence != key.second ||
          control->shard != key.first || control->segment != key.second) {
        return failed(where + ": header or root names another segment");
      }
      if (control->header_digest != header_digest(*header_bytes)) {
        return failed(where + ": root was signed for another segment header");
      }
      const KeyringEntry* signer = keyring.find(control->key_id);
      if (signer == nullptr) {
        return failed(fmt::format("{}: signing key {} is not in the keyring", where,
                                  key_id_hex(control->key_id)));
      }
      if (signer->node_id != header->node_id || control->key_id != header->key_id) {
        return failed(fmt::format("{}: key {} does not sign for node '{}'", where,
                                  key_id_hex(control->key_id), header->node_id));
      }
      if (!control_signature_valid(view->body, signer->public_key)) {
        return failed(fmt::format("{}: {} signature does not verify", where,
                                  event_type_name(control->type)));
      }
      if (!roots.try_emplace(key, Root{*control, control->records}).second) {
        return failed(where + ": segment listed twice");
      }
      ++report.segments;
    } else if (kind->get<std::string>() == "record") {
      const auto root = roots.find(key);
      if (root == roots.end()) return failed(where + ": no signed root for this segment before it");
      const auto index = j.find("index");
      auto bytes = unb64(j.value("bytes", nlohmann::json()));
      auto previous = parse_hash(j.value("previous", nlohmann::json()));
      const auto proof_json = j.find("proof");
      if (index == j.end() || !index->is_number_unsigned() || !bytes || !previous ||
          proof_json == j.end() || !proof_json->is_array() || proof_json->size() > 64) {
        return failed(where + ": expected index, bytes, previous and proof");
      }
      std::vector<MerkleHash> proof;
      for (const auto& h : *proof_json) {
        auto parsed = parse_hash(h);
        if (!parsed) return failed(where + ": proof hashes must be 64 lowercase hex digits");
        proof.push_back(*parsed);
      }
      auto view = decode_record(*bytes);
      if (!view) return failed(where + ": record: " + view.error().message);
      if (hasher.next(*previous, view->body) != view->stored_hash) {
        return failed(fmt::format("{} record {}: chain hash does not match its bytes", where,
                                  index->get<uint64_t>()));
      }
      if (!merkle_verify_inclusion(view->stored_hash, index->get<uint64_t>(),
                                   root->second.control.records, proof,
                                   root->second.control.merkle_root)) {
        return failed(fmt::format("{} record {}: not in the signed Merkle root of the segment",
                                  where, index->get<uint64_t>()));
      }
      sessions.insert(view->session_id);
      ++report.records;
    } else {
      return failed("unknown kind");
    }
  }
  report.sessions = sessions.size();
  if (report.records == 0) {
    line_number = 0;
    return failed("the bundle holds no records");
  }
  return report;
}

}  // namespace gh::rec

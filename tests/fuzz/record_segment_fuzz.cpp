// libFuzzer target for the trail decoders: a segment file (header, record framing, chain hashes,
// control records) and an anchor file line, with invariants asserted. Must not depend on
// anything but the sans-I/O parts of gh_record (compiled into this target) and OpenSSL.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "core/assert.hpp"
#include "record/control.hpp"
#include "record/merkle.hpp"
#include "record/segment.hpp"

namespace {

using namespace gh::rec;

bool inside(std::span<const std::byte> in, std::span<const std::byte> part) {
  return part.empty() || (part.data() >= in.data() && part.data() + part.size() <= in.data() + in.size());
}

void scan(std::span<const std::byte> file) {
  auto header = parse_segment_header(file);
  if (!header) return;
  // A parsed header encodes back to the same bytes: every byte of it is checked on read.
  const auto again = encode_segment_header(*header);
  GH_ASSERT(std::equal(again.begin(), again.end(), file.begin()));
  for (const bool check_hashes : {false, true}) {
    MerkleBuilder merkle;
    uint64_t seen = 0;
    const SegmentScan s = scan_segment_records(
        file, header->previous_hash, check_hashes, [&](const ScannedRecord& r) {
          GH_ASSERT(r.index == seen++);
          GH_ASSERT(r.offset >= limits::segment_header_bytes && r.offset < file.size());
          GH_ASSERT(inside(file, r.view.body) && inside(file, r.view.field_bytes));
          size_t fields = 0;
          r.view.for_each_field([&](const Field& f) {
            GH_ASSERT(inside(file, std::as_bytes(std::span(f.value.data(), f.value.size()))));
            ++fields;
          });
          GH_ASSERT(fields == r.view.field_count);
          if (is_control_type(r.view.type)) {
            if (auto c = decode_control(r.view)) {
              GH_ASSERT(c->type == r.view.type && r.view.session_id == 0);
              (void)control_signature_valid(r.view.body, PublicKey{});
            }
          }
          merkle.add(r.view.stored_hash);
          return true;
        });
    GH_ASSERT(s.records == seen && merkle.size() == seen);
    GH_ASSERT(s.end_offset >= limits::segment_header_bytes && s.end_offset <= file.size());
    GH_ASSERT((s.end == ScanEnd::kClean) == (s.end_offset == file.size()));
    if (seen > 0) {
      std::vector<ChainHash> hashes;
      (void)scan_segment_records(file, header->previous_hash, check_hashes,
                                 [&](const ScannedRecord& r) {
                                   hashes.push_back(r.view.stored_hash);
                                   return true;
                                 });
      const MerkleTree tree(hashes);
      GH_ASSERT(tree.root() == merkle.root());
      const uint64_t last = hashes.size() - 1;
      GH_ASSERT(merkle_verify_inclusion(hashes[last], last, hashes.size(),
                                        tree.inclusion_proof(last), tree.root()));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  scan(in);
  if (auto line = parse_anchor_line(std::string_view(reinterpret_cast<const char*>(data), size))) {
    GH_ASSERT(!line->anchor.record.empty());
  }
  return 0;
}

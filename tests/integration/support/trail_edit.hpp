// Editing segment files the way an attacker with write access to the trail would: cutting,
// swapping and rewriting records, and recomputing every hash they can without the node key.
// Test support only (unit and integration tests); header-only over gh_record.
#pragma once

#include <cstring>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "record/control.hpp"
#include "record/hash.hpp"
#include "record/merkle.hpp"
#include "record/segment.hpp"

namespace gh::test::trail_edit {

using Bytes = std::vector<std::byte>;

inline Bytes load(const std::string& path) {
  auto bytes = rec::read_whole_file(path);
  if (!bytes) throw std::runtime_error(bytes.error().message);
  return *bytes;
}

inline void save(const std::string& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// One record of a segment: its bytes (body and chain hash) and its type.
struct Record {
  Bytes bytes;
  rec::EventType type{};
  bool heartbeat = false;  // a checkpoint with its heartbeat flag set
};

struct Segment {
  Bytes header;  // the 256-byte header
  std::vector<Record> records;
};

// Splits a segment file into header and records (framing only; the hashes are not judged).
inline Segment split(const Bytes& file) {
  Segment out;
  auto header = rec::parse_segment_header(file);
  if (!header) throw std::runtime_error("split: " + header.error().message);
  out.header.assign(file.begin(), file.begin() + rec::limits::segment_header_bytes);
  const rec::SegmentScan scan = rec::scan_segment_records(
      file, header->previous_hash, false, [&](const rec::ScannedRecord& r) {
        Record record;
        const auto* begin = file.data() + r.offset;
        record.bytes.assign(begin, begin + r.view.body.size() + rec::limits::chain_hash_bytes);
        record.type = r.view.type;
        if (r.view.type == rec::EventType::kCheckpoint) {
          auto control = rec::decode_control(r.view);
          record.heartbeat = control && control->heartbeat;
        }
        out.records.push_back(std::move(record));
        return true;
      });
  if (scan.end != rec::ScanEnd::kClean) throw std::runtime_error("split: " + scan.reason);
  return out;
}

inline Bytes join(const Segment& s) {
  Bytes out = s.header;
  for (const Record& r : s.records) out.insert(out.end(), r.bytes.begin(), r.bytes.end());
  return out;
}

// What a forger without the key can do after changing records: recompute every chain hash from
// the header's previous hash, and the record count, last hash and Merkle root that every
// checkpoint and seal states, leaving their signatures as they were (the key is not at hand).
inline void rechain(Segment& s) {
  auto header = rec::parse_segment_header(s.header);
  if (!header) throw std::runtime_error("rechain: " + header.error().message);
  rec::ChainHasher hasher;
  rec::MerkleBuilder merkle;
  rec::ChainHash previous = header->previous_hash;
  for (size_t i = 0; i < s.records.size(); ++i) {
    Record& r = s.records[i];
    const size_t body_bytes = r.bytes.size() - rec::limits::chain_hash_bytes;
    if (r.type == rec::EventType::kCheckpoint || r.type == rec::EventType::kSeal) {
      auto view = rec::decode_record(r.bytes);
      if (!view) throw std::runtime_error("rechain: " + view.error().message);
      const auto patch = [&](rec::FieldTag tag, const void* value, size_t size) {
        view->for_each_field([&](const rec::Field& f) {
          if (f.tag != tag || f.value.size() != size) return;
          const size_t at = static_cast<size_t>(reinterpret_cast<const std::byte*>(f.value.data()) -
                                                r.bytes.data());
          std::memcpy(r.bytes.data() + at, value, size);
        });
      };
      const uint64_t records = i;
      const rec::MerkleHash root = merkle.root();
      patch(rec::FieldTag::kCtlRecords, &records, sizeof records);
      patch(rec::FieldTag::kCtlLastHash, previous.data(), previous.size());
      patch(rec::FieldTag::kCtlMerkleRoot, root.data(), root.size());
    }
    previous = hasher.next(previous, std::span(r.bytes).first(body_bytes));
    std::memcpy(r.bytes.data() + body_bytes, previous.data(), previous.size());
    merkle.add(previous);
  }
}

// Index of the first record whose bytes contain `needle` (e.g. a statement's text).
inline size_t find_record(const Segment& s, std::string_view needle) {
  for (size_t i = 0; i < s.records.size(); ++i) {
    const std::string_view text(reinterpret_cast<const char*>(s.records[i].bytes.data()),
                                s.records[i].bytes.size());
    if (text.find(needle) != std::string_view::npos) return i;
  }
  throw std::runtime_error("no record holds " + std::string(needle));
}

}  // namespace gh::test::trail_edit

// libFuzzer target for the SFTP decoder and tracker. The input is a conversation: chunks, each a
// header byte (top bit: from the server; low 7 bits: length) and that many bytes. Every stream is
// decoded twice, as chunked and whole, and the reports must agree; the tracker follows both
// streams. Must not depend on anything but the sans-I/O SFTP sources (compiled into this target).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/assert.hpp"
#include "protocols/ssh/codec/sftp.hpp"
#include "protocols/ssh/codec/sftp_tracker.hpp"

namespace {

using namespace gh::ssh::sftp;

// One report of the decoder, copied out of its buffer.
std::string report(const Decoder::Decoded& d) {
  const Packet& p = d.packet;
  std::string s;
  s += char(d.status);
  s += char(p.type);
  s += std::to_string(p.id) + "/" + std::to_string(p.length) + "/" + std::to_string(p.count) + "/" +
       std::to_string(p.offset) + "/" + std::to_string(p.status) + "/" + std::to_string(p.pflags) + "/";
  for (std::string_view v : {p.path, p.path2, p.handle, p.extension}) {
    s += std::to_string(v.size()) + ":";
    s += v;
  }
  return s;
}

// Every report of `stream` fed in `pieces`; the decoder never reads past what it was given.
std::vector<std::string> decode(std::span<const std::byte> stream, const std::vector<size_t>& pieces) {
  Decoder decoder;
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t n : pieces) {
    std::span<const std::byte> in = stream.subspan(at, n);
    at += n;
    while (true) {
      const Decoder::Decoded d = decoder.next(in);
      GH_ASSERT(d.consumed <= in.size());
      in = in.subspan(d.consumed);
      if (d.status == Decoder::Status::kNeedMore) {
        GH_ASSERT(in.empty());
        break;
      }
      const Packet& p = d.packet;
      GH_ASSERT(p.path.size() <= kPathBytesMax && p.path2.size() <= kPathBytesMax);
      GH_ASSERT(p.handle.size() <= kHandleBytesMax);
      out.push_back(report(d));
      if (d.status == Decoder::Status::kError) return out;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  std::vector<std::byte> streams[2];
  std::vector<size_t> pieces[2];
  Tracker tracker;
  size_t at = 0;
  while (at < size) {
    const bool from_server = (data[at] & 0x80) != 0;
    const size_t n = std::min<size_t>(data[at] & 0x7f, size - at - 1);
    ++at;
    const std::span<const std::byte> chunk(bytes + at, n);
    at += n;
    streams[from_server].insert(streams[from_server].end(), chunk.begin(), chunk.end());
    pieces[from_server].push_back(n);
    if (from_server) {
      tracker.server_bytes(chunk);
    } else {
      tracker.client_bytes(chunk);
    }
    for (const FileOp& op : tracker.completed()) {
      GH_ASSERT(!op.operation.empty());
      GH_ASSERT(op.path.size() <= kPathBytesMax && op.path2.size() <= kPathBytesMax);
    }
    tracker.completed().clear();
  }
  tracker.finish();
  GH_ASSERT(tracker.completed().size() <= Tracker::kPendingMax + Tracker::kHandlesMax);
  for (int side = 0; side < 2; ++side) {
    const std::vector<size_t> whole{streams[side].size()};
    GH_ASSERT(decode(streams[side], pieces[side]) == decode(streams[side], whole));
  }
  return 0;
}

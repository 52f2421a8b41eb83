// Segment files: header codec, file naming, record scanning and the append-only shard writer.
// Blocking file I/O lives here and runs on the flusher thread only, never on a shard thread.
#include "record/segment.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "core/assert.hpp"
#include "record/le.hpp"

namespace gh::rec {

namespace {

// Header offsets (record/FORMAT.md, "Segment header").
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 8;
constexpr size_t kOffHeaderBytes = 10;
constexpr size_t kOffShard = 12;
constexpr size_t kOffNodeIdLength = 14;
constexpr size_t kOffNodeId = 16;
constexpr size_t kOffSequence = kOffNodeId + limits::node_id_bytes_max;
constexpr size_t kOffCreated = kOffSequence + 8;
constexpr size_t kOffPreviousHash = kOffCreated + 8;
constexpr size_t kOffFlags = kOffPreviousHash + limits::chain_hash_bytes;
constexpr size_t kOffReserved = kOffFlags + 4;
static_assert(kOffSequence == 80 && kOffPreviousHash == 96 && kOffReserved == 132);
static_assert(kOffReserved < limits::segment_header_bytes);

std::string errno_text(int err) { return std::strerror(err); }

bool all_zero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty() || a.back() == '/') return a + b;
  return a + "/" + b;
}

template <class T>
std::optional<T> parse_digits(std::string_view text, size_t digits_min) {
  if (text.size() < digits_min || text.size() > 20) return std::nullopt;
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Result<void> make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0750) == 0 || errno == EEXIST) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return fail(fmt::format("{}: not a directory", path));
    }
    return {};
  }
  return fail(fmt::format("{}: cannot create directory: {}", path, errno_text(errno)));
}

}  // namespace

Result<void> make_directories(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0750) != 0 && errno != EEXIST) {
      return fail(fmt::format("{}: cannot create directory: {}", prefix, errno_text(errno)));
    }
  }
  return make_dir(path);
}

namespace {

Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return fail(fmt::format("{}: cannot read: {}", path, errno_text(errno)));
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(dir);
  return names;
}

// Why `prefix` (shorter than `length`) cannot be the start of a record of `length` bytes, or
// nullopt when it can.
std::optional<std::string> prefix_inconsistency(std::span<const std::byte> prefix,
                                                uint32_t length) {
  const size_t body_end = length - limits::chain_hash_bytes;
  if (prefix.size() > 4 && prefix[4] == std::byte{0}) return "record type 0";
  if (prefix.size() < limits::record_prefix_bytes) return std::nullopt;
  const uint16_t field_count = le::load<uint16_t>(prefix.data() + 25);
  if (field_count > limits::record_field_count_max) return "too many fields";
  size_t at = limits::record_prefix_bytes;
  for (uint16_t i = 0; i < field_count; ++i) {
    if (prefix.size() < at + limits::field_header_bytes) return std::nullopt;
    if (le::load<uint16_t>(prefix.data() + at) == 0) return "a field has tag 0";
    const uint64_t field_end =
        at + limits::field_header_bytes + le::load<uint32_t>(prefix.data() + at + 2);
    if (field_end > body_end) return "a field runs past the record end";
    at = static_cast<size_t>(field_end);
  }
  if (at != body_end) return "the fields end before the record does";
  return std::nullopt;
}

class PosixSegmentIo final : public SegmentIo {
 public:
  int open_new(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    return fd >= 0 ? fd : -errno;
  }
  ssize_t write(int fd, std::span<const std::byte> bytes) override {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    return n >= 0 ? n : -errno;
  }
  int fdatasync(int fd) override { return ::fdatasync(fd) == 0 ? 0 : -errno; }
  int close(int fd) override { return ::close(fd) == 0 ? 0 : -errno; }
  int rename(const std::string& from, const std::string& to) override {
    // Never replace a segment: another writer on the same directory would fork the chain.
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL) return -errno;
    // File systems without RENAME_NOREPLACE: link() refuses an existing target as well.
    if (::link(from.c_str(), to.c_str()) != 0) return -errno;
    return ::unlink(from.c_str()) == 0 ? 0 : -errno;
  }
  int unlink(const std::string& path) override { return ::unlink(path.c_str()) == 0 ? 0 : -errno; }
  int sync_dir(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    const int rc = ::fsync(fd) == 0 ? 0 : -errno;
    ::close(fd);
    return rc;
  }
};

}  // namespace

std::array<std::byte, limits::segment_header_bytes> encode_segment_header(const SegmentHeader& h) {
  GH_ASSERT(!h.node_id.empty() && h.node_id.size() <= limits::node_id_bytes_max);
  GH_ASSERT((h.flags & ~kHeaderFlagsKnown) == 0);
  std::array<std::byte, limits::segment_header_bytes> out{};
  std::memcpy(out.data() + kOffMagic, kSegmentMagic.data(), kSegmentMagic.size());
  le::store<uint16_t>(out.data() + kOffVersion, h.format_version);
  le::store<uint16_t>(out.data() + kOffHeaderBytes, limits::segment_header_bytes);
  le::store<uint16_t>(out.data() + kOffShard, h.shard);
  le::store<uint16_t>(out.data() + kOffNodeIdLength, static_cast<uint16_t>(h.node_id.size()));
  std::memcpy(out.data() + kOffNodeId, h.node_id.data(), h.node_id.size());
  le::store<uint64_t>(out.data() + kOffSequence, h.sequence);
  le::store<uint64_t>(out.data() + kOffCreated, h.created_ns);
  std::memcpy(out.data() + kOffPreviousHash, h.previous_hash.data(), h.previous_hash.size());
  le::store<uint32_t>(out.data() + kOffFlags, h.flags);
  return out;
}

Result<SegmentHeader> parse_segment_header(std::span<const std::byte> bytes) {
  if (bytes.size() < limits::segment_header_bytes) {
    return fail(fmt::format("header truncated: {} of {} bytes", bytes.size(),
                            limits::segment_header_bytes));
  }
  if (std::memcmp(bytes.data() + kOffMagic, kSegmentMagic.data(), kSegmentMagic.size()) != 0) {
    return fail("bad magic (not a gatehouse trail segment)");
  }
  SegmentHeader h;
  h.format_version = le::load<uint16_t>(bytes.data() + kOffVersion);
  if (h.format_version != kFormatVersion) {
    return fail(fmt::format("unsupported format version {} (this build reads {})", h.format_version,
                            kFormatVersion));
  }
  const uint16_t header_bytes = le::load<uint16_t>(bytes.data() + kOffHeaderBytes);
  if (header_bytes != limits::segment_header_bytes) {
    return fail(
        fmt::format("header size {} is not {}", header_bytes, limits::segment_header_bytes));
  }
  h.shard = le::load<uint16_t>(bytes.data() + kOffShard);
  const uint16_t node_id_length = le::load<uint16_t>(bytes.data() + kOffNodeIdLength);
  if (node_id_length == 0 || node_id_length > limits::node_id_bytes_max) {
    return fail(fmt::format("node id length {} is out of [1, {}]", node_id_length,
                            limits::node_id_bytes_max));
  }
  h.node_id.assign(reinterpret_cast<const char*>(bytes.data() + kOffNodeId), node_id_length);
  if (!all_zero(
          bytes.subspan(kOffNodeId + node_id_length, limits::node_id_bytes_max - node_id_length))) {
    return fail("node id padding is not zero");
  }
  h.sequence = le::load<uint64_t>(bytes.data() + kOffSequence);
  if (h.sequence == 0) return fail("segment sequence 0 is not valid");
  h.created_ns = le::load<uint64_t>(bytes.data() + kOffCreated);
  std::memcpy(h.previous_hash.data(), bytes.data() + kOffPreviousHash, h.previous_hash.size());
  h.flags = le::load<uint32_t>(bytes.data() + kOffFlags);
  if ((h.flags & ~kHeaderFlagsKnown) != 0) {
    return fail(fmt::format("unknown header flags {:#x}", h.flags & ~kHeaderFlagsKnown));
  }
  const auto reserved = bytes.subspan(kOffReserved, limits::segment_header_bytes - kOffReserved);
  if (!all_zero(reserved)) {
    const auto it = std::find_if(reserved.begin(), reserved.end(),
                                 [](std::byte b) { return b != std::byte{0}; });
    return fail(fmt::format("header padding is not zero at byte {}",
                            kOffReserved + static_cast<size_t>(it - reserved.begin())));
  }
  return h;
}

std::string shard_dir_name(uint16_t shard) { return fmt::format("shard-{:02}", shard); }
std::string segment_file_name(uint64_t sequence) { return fmt::format("{:08}.seg", sequence); }

std::optional<uint16_t> parse_shard_dir_name(std::string_view name) {
  constexpr std::string_view kPrefix = "shard-";
  if (!name.starts_with(kPrefix)) return std::nullopt;
  return parse_digits<uint16_t>(name.substr(kPrefix.size()), 2);
}

std::optional<uint64_t> parse_segment_file_name(std::string_view name) {
  constexpr std::string_view kSuffix = ".seg";
  if (!name.ends_with(kSuffix)) return std::nullopt;
  return parse_digits<uint64_t>(name.substr(0, name.size() - kSuffix.size()), 8);
}

Result<std::vector<uint16_t>> list_shards(const std::string& trail_dir) {
  auto names = list_dir(trail_dir);
  if (!names) return std::unexpected(names.error());
  std::vector<uint16_t> shards;
  for (const std::string& name : *names) {
    if (auto shard = parse_shard_dir_name(name)) shards.push_back(*shard);
  }
  std::sort(shards.begin(), shards.end());
  return shards;
}

Result<std::vector<uint64_t>> list_segments(const std::string& shard_dir) {
  auto names = list_dir(shard_dir);
  if (!names) return std::unexpected(names.error());
  std::vector<uint64_t> sequences;
  for (const std::string& name : *names) {
    if (auto sequence = parse_segment_file_name(name)) sequences.push_back(*sequence);
  }
  std::sort(sequences.begin(), sequences.end());
  return sequences;
}

Result<std::vector<std::string>> list_partial_files(const std::string& shard_dir) {
  auto names = list_dir(shard_dir);
  if (!names) return std::unexpected(names.error());
  std::vector<std::string> partials;
  for (std::string& name : *names) {
    if (name.ends_with(".seg.partial")) partials.push_back(std::move(name));
  }
  std::sort(partials.begin(), partials.end());
  return partials;
}

Result<std::vector<std::byte>> read_whole_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(fmt::format("{}: cannot open: {}", path, errno_text(errno)));
  std::vector<std::byte> bytes;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) bytes.reserve(static_cast<size_t>(st.st_size));
  std::array<std::byte, 64 * 1024> chunk;
  for (;;) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(fmt::format("{}: read failed: {}", path, errno_text(err)));
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  ::close(fd);
  return bytes;
}

SegmentScan scan_segment_records(std::span<const std::byte> file, const ChainHash& start_hash,
                                 bool check_hashes,
                                 const std::function<bool(const ScannedRecord&)>& on_record) {
  GH_ASSERT(file.size() >= limits::segment_header_bytes);
  SegmentScan scan;
  scan.last_hash = start_hash;
  scan.end_offset = limits::segment_header_bytes;
  std::optional<ChainHasher> hasher;
  if (check_hashes) hasher.emplace();
  uint64_t offset = limits::segment_header_bytes;
  while (offset < file.size()) {
    const std::span<const std::byte> rest = file.subspan(offset);
    const auto torn = [&](std::string reason) {
      scan.end = ScanEnd::kTornTail;
      scan.reason = std::move(reason);
      return scan;
    };
    if (rest.size() < 4) {
      return torn(
          fmt::format("truncated record: {} bytes left, too few for a length", rest.size()));
    }
    // A crash can leave a zero-filled tail (space allocated, data never written).
    if (all_zero(rest)) return torn(fmt::format("truncated record: {} zero bytes", rest.size()));
    const uint32_t length = le::load<uint32_t>(rest.data());
    if (length < limits::record_bytes_min || length > limits::record_bytes_max) {
      scan.end = ScanEnd::kDamaged;
      scan.reason = fmt::format("invalid record length {}", length);
      return scan;
    }
    if (length > rest.size()) {
      // A torn write leaves a prefix of a real record. A length word altered to reach past the
      // end of the file gives itself away when the bytes present do not frame that way.
      if (auto why = prefix_inconsistency(rest, length)) {
        scan.end = ScanEnd::kDamaged;
        scan.reason = fmt::format("invalid record length {}: {}", length, *why);
        return scan;
      }
      return torn(
          fmt::format("truncated record: length {} but {} bytes left", length, rest.size()));
    }
    auto view = decode_record(rest.first(length));
    if (!view) {
      scan.end = ScanEnd::kDamaged;
      scan.reason = fmt::format("malformed record: {}", view.error().message);
      return scan;
    }
    if (check_hashes) {
      const ChainHash expected = hasher->next(scan.last_hash, view->body);
      if (expected != view->stored_hash) {
        scan.end = ScanEnd::kDamaged;
        scan.reason = "chain hash mismatch";
        return scan;
      }
    }
    if (on_record && !on_record(ScannedRecord{scan.records, offset, *view})) return scan;
    scan.last_hash = view->stored_hash;
    offset += length;
    scan.end_offset = offset;
    ++scan.records;
  }
  return scan;
}

SegmentIo& posix_segment_io() {
  static PosixSegmentIo io;
  return io;
}

// ShardWriter

ShardWriter::ShardWriter(ShardWriterOptions options)
    : options_(std::move(options)),
      io_(options_.io != nullptr ? options_.io : &posix_segment_io()),
      shard_dir_(join_path(options_.trail_dir, shard_dir_name(options_.shard))) {
  staged_.reserve(limits::write_batch_bytes_max);
}

ShardWriter::~ShardWriter() {
  if (fd_ >= 0) {
    (void)io_->fdatasync(fd_);
    (void)io_->close(fd_);
  }
}

Result<std::unique_ptr<ShardWriter>> ShardWriter::open(ShardWriterOptions options) {
  if (options.node_id.empty() || options.node_id.size() > limits::node_id_bytes_max) {
    return fail(fmt::format("node_id must be 1..{} bytes", limits::node_id_bytes_max));
  }
  if (options.segment_bytes_max < limits::segment_bytes_min ||
      options.segment_bytes_max > limits::segment_bytes_max) {
    return fail(fmt::format("segment_bytes_max {} is out of [{}, {}]", options.segment_bytes_max,
                            limits::segment_bytes_min, limits::segment_bytes_max));
  }
  std::unique_ptr<ShardWriter> writer(new ShardWriter(std::move(options)));
  if (auto made = make_directories(writer->shard_dir_); !made) return std::unexpected(made.error());

  // A .partial file is a rotation that crashed before its rename: it holds a header at most.
  auto partials = list_partial_files(writer->shard_dir_);
  if (!partials) return std::unexpected(partials.error());
  for (const std::string& name : *partials) {
    (void)writer->io_->unlink(join_path(writer->shard_dir_, name));
  }

  auto sequences = list_segments(writer->shard_dir_);
  if (!sequences) return std::unexpected(sequences.error());
  if (sequences->empty()) return writer;

  const uint64_t last = sequences->back();
  const std::string path = join_path(writer->shard_dir_, segment_file_name(last));
  auto bytes = read_whole_file(path);
  if (!bytes) return std::unexpected(bytes.error());
  auto header = parse_segment_header(*bytes);
  if (!header) {
    return fail(
        fmt::format("{}: cannot resume after this segment: {}", path, header.error().message));
  }
  if (header->shard != writer->options_.shard || header->sequence != last) {
    return fail(fmt::format("{}: header says shard {} segment {}; refusing to resume", path,
                            header->shard, header->sequence));
  }
  // Framing only: the link must reach the last intact record; judging the hashes is verify's job.
  const SegmentScan scan = scan_segment_records(*bytes, header->previous_hash, false);
  writer->resume_.previous_sequence = last;
  writer->chain_ = scan.last_hash;
  writer->staged_chain_ = scan.last_hash;
  writer->next_sequence_ = last + 1;
  if (scan.end != ScanEnd::kClean) {
    writer->resume_.previous_tail_torn = true;
    writer->resume_.torn_bytes = bytes->size() - scan.end_offset;
    writer->resume_.note = fmt::format(
        "{}: {} bytes after record {} at offset {} are not intact ({}); the next segment links "
        "to the last intact record",
        path, writer->resume_.torn_bytes, scan.records, scan.end_offset, scan.reason);
  }
  return writer;
}

bool ShardWriter::fits(size_t record_bytes) const {
  const uint64_t segment_bytes = fd_ >= 0 ? segment_bytes_ : limits::segment_header_bytes;
  const uint64_t segment_records = fd_ >= 0 ? segment_records_ : 0;
  if (segment_records + staged_records_ == 0) return true;
  return segment_bytes + staged_.size() + record_bytes <= options_.segment_bytes_max;
}

void ShardWriter::stage(std::span<const std::byte> body) {
  GH_ASSERT(staged_written_ == 0);
  GH_ASSERT(staged_.size() + body.size() + limits::chain_hash_bytes <= staged_.capacity());
  // Only record bodies may reach a ring handed to the flusher (Ring::try_push(const Event&)).
  GH_ASSERT(body.size() >= limits::record_prefix_bytes &&
            le::load<uint32_t>(body.data()) == body.size() + limits::chain_hash_bytes);
  staged_chain_ = hasher_.next(staged_chain_, body);
  const auto* hash = reinterpret_cast<const std::byte*>(staged_chain_.data());
  staged_.insert(staged_.end(), body.begin(), body.end());
  staged_.insert(staged_.end(), hash, hash + staged_chain_.size());
  ++staged_records_;
}

Result<void> ShardWriter::open_segment() {
  GH_ASSERT(fd_ < 0);
  const std::string name = segment_file_name(next_sequence_);
  const std::string path = join_path(shard_dir_, name);
  const std::string partial = path + ".partial";
  SegmentHeader header;
  header.shard = options_.shard;
  header.node_id = options_.node_id;
  header.sequence = next_sequence_;
  header.created_ns = realtime_now_ns();
  header.previous_hash = chain_;
  if (first_segment_after_resume_ && resume_.previous_tail_torn) {
    header.flags |= kHeaderFlagPreviousTailTorn;
  }
  const auto bytes = encode_segment_header(header);

  int fd = io_->open_new(partial);
  if (fd == -EEXIST) {
    (void)io_->unlink(partial);  // our own earlier attempt that failed half-way
    fd = io_->open_new(partial);
  }
  if (fd < 0) return fail(fmt::format("{}: cannot create: {}", partial, errno_text(-fd)));
  const auto abandon = [&](std::string what, int err) -> Result<void> {
    (void)io_->close(fd);
    (void)io_->unlink(partial);
    return fail(fmt::format("{}: {}: {}", partial, what, errno_text(err)));
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = io_->write(fd, std::span(bytes).subspan(done));
    if (n == -EINTR) continue;
    if (n < 0) return abandon("header write failed", static_cast<int>(-n));
    if (n == 0) return abandon("header write made no progress", EIO);
    done += static_cast<size_t>(n);
  }
  // Synced before the rename so that a crash never leaves a .seg with a torn header.
  if (const int rc = io_->fdatasync(fd); rc < 0) return abandon("fdatasync failed", -rc);
  ++fsyncs_;
  if (const int rc = io_->rename(partial, path); rc < 0) return abandon("rename failed", -rc);
  fd_ = fd;
  segment_bytes_ = bytes.size();
  segment_records_ = 0;
  ++next_sequence_;
  first_segment_after_resume_ = false;
  dir_dirty_ = true;
  return {};
}

Result<void> ShardWriter::write_staged() {
  if (staged_.empty()) return {};
  if (fd_ < 0) {
    if (auto opened = open_segment(); !opened) return opened;
  }
  while (staged_written_ < staged_.size()) {
    const ssize_t n = io_->write(fd_, std::span(staged_).subspan(staged_written_));
    if (n == -EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? static_cast<int>(-n) : EIO;
      return fail(fmt::format("{}/{}: write failed after {} of {} bytes: {}", shard_dir_,
                              segment_file_name(next_sequence_ - 1), staged_written_,
                              staged_.size(), errno_text(err)));
    }
    staged_written_ += static_cast<size_t>(n);
    segment_bytes_ += static_cast<uint64_t>(n);
    bytes_written_ += static_cast<uint64_t>(n);
    dirty_ = true;
  }
  segment_records_ += staged_records_;
  records_written_ += staged_records_;
  chain_ = staged_chain_;
  staged_.clear();
  staged_records_ = 0;
  staged_written_ = 0;
  return {};
}

Result<void> ShardWriter::sync() {
  if (dirty_ && fd_ >= 0) {
    if (const int rc = io_->fdatasync(fd_); rc < 0) {
      return fail(fmt::format("{}/{}: fdatasync failed: {}", shard_dir_,
                              segment_file_name(next_sequence_ - 1), errno_text(-rc)));
    }
    ++fsyncs_;
    dirty_ = false;
  }
  if (dir_dirty_) {
    if (const int rc = io_->sync_dir(shard_dir_); rc < 0) {
      return fail(fmt::format("{}: directory fsync failed: {}", shard_dir_, errno_text(-rc)));
    }
    dir_dirty_ = false;
  }
  return {};
}

Result<void> ShardWriter::rotate() {
  GH_ASSERT(staged_written_ == 0);
  if (fd_ < 0) return {};
  if (auto synced = sync(); !synced) return synced;
  (void)io_->close(fd_);
  fd_ = -1;
  segment_bytes_ = 0;
  segment_records_ = 0;
  return {};
}

}  // namespace gh::rec

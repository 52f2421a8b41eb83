// Bounds-checked big-endian readers over a byte span, shared by the decoders and the message views.
// Must not depend on anything beyond the standard library: no I/O, no allocation, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace gh::pg::wire {

using Bytes = std::span<const std::byte>;

// Integers on the wire are in network byte order (Frontend/Backend Protocol, Message Data Types).
inline uint16_t load_u16(const std::byte* p) {
  return static_cast<uint16_t>((std::to_integer<uint16_t>(p[0]) << 8) |
                               std::to_integer<uint16_t>(p[1]));
}
inline uint32_t load_u32(const std::byte* p) {
  return (std::to_integer<uint32_t>(p[0]) << 24) | (std::to_integer<uint32_t>(p[1]) << 16) |
         (std::to_integer<uint32_t>(p[2]) << 8) | std::to_integer<uint32_t>(p[3]);
}

inline std::string_view as_chars(Bytes b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}
inline Bytes as_bytes(std::string_view s) {
  return Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

// A cursor over a message body. Every read checks the remaining size first and, when it fails,
// leaves the cursor where it was, so a caller can tell "stopped at a terminator" from "ran out".
class Reader {
 public:
  explicit Reader(Bytes in) : in_(in) {}

  [[nodiscard]] size_t remaining() const { return in_.size() - pos_; }
  [[nodiscard]] bool empty() const { return pos_ == in_.size(); }
  [[nodiscard]] Bytes rest() const { return in_.subspan(pos_); }
  // The next byte without consuming it; only call when !empty().
  [[nodiscard]] uint8_t peek() const { return std::to_integer<uint8_t>(in_[pos_]); }

  [[nodiscard]] bool u8(uint8_t& out) {
    if (remaining() < 1) return false;
    out = std::to_integer<uint8_t>(in_[pos_]);
    pos_ += 1;
    return true;
  }
  [[nodiscard]] bool i8(int8_t& out) {
    uint8_t v = 0;
    if (!u8(v)) return false;
    out = static_cast<int8_t>(v);
    return true;
  }
  [[nodiscard]] bool u16(uint16_t& out) {
    if (remaining() < 2) return false;
    out = load_u16(in_.data() + pos_);
    pos_ += 2;
    return true;
  }
  [[nodiscard]] bool i16(int16_t& out) {
    uint16_t v = 0;
    if (!u16(v)) return false;
    out = static_cast<int16_t>(v);
    return true;
  }
  [[nodiscard]] bool u32(uint32_t& out) {
    if (remaining() < 4) return false;
    out = load_u32(in_.data() + pos_);
    pos_ += 4;
    return true;
  }
  [[nodiscard]] bool i32(int32_t& out) {
    uint32_t v = 0;
    if (!u32(v)) return false;
    out = static_cast<int32_t>(v);
    return true;
  }
  [[nodiscard]] bool bytes(size_t n, Bytes& out) {
    if (remaining() < n) return false;
    out = in_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  // String: characters up to a NUL that lies inside the input; the NUL is consumed, not returned
  // (Message Data Types: "String(s)").
  [[nodiscard]] bool cstr(std::string_view& out) {
    const size_t left = remaining();
    if (left == 0) return false;
    const void* nul = std::memchr(in_.data() + pos_, 0, left);
    if (nul == nullptr) return false;
    const size_t len =
        static_cast<size_t>(static_cast<const std::byte*>(nul) - (in_.data() + pos_));
    out = as_chars(in_.subspan(pos_, len));
    pos_ += len + 1;
    return true;
  }

 private:
  Bytes in_;
  size_t pos_ = 0;
};

}  // namespace gh::pg::wire

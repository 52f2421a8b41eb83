// Extended-protocol statements and portals for the trail (see extended.hpp). Must not do I/O.
#include "protocols/postgres/extended.hpp"

#include <algorithm>

namespace gh::pg {

std::optional<BindSummary> summarize_bind(Bytes frame, size_t head_bytes_max) {
  // Bind (Message Formats): Byte1('B') Int32 length, String portal, String statement,
  // Int16 C + C x Int16 format codes, Int16 P + P x (Int32 length, bytes), Int16 R + R x Int16.
  if (frame.size() < kTypedHeaderBytes || frame[0] != std::byte{Bind::kType}) return std::nullopt;
  Bytes rest = frame.subspan(kTypedHeaderBytes);
  BindSummary out;
  int16_t format_count = 0;
  if (!next_cstr(rest, out.portal) || !next_cstr(rest, out.statement) ||
      !next_i16(rest, format_count) || format_count < 0 ||
      rest.size() < size_t(format_count) * 2) {
    return std::nullopt;
  }
  const Bytes formats = rest.first(size_t(format_count) * 2);
  rest = rest.subspan(formats.size());
  int16_t parameter_count = 0;
  if (!next_i16(rest, parameter_count) || parameter_count < 0) return std::nullopt;
  // The 0 / 1 / n rule: none (all text), one for all, or one per parameter.
  if (format_count > 1 && format_count != parameter_count) return std::nullopt;
  out.parameter_count = uint16_t(parameter_count);
  out.parameters.reserve(std::min<size_t>(out.parameter_count, 64));
  for (uint16_t i = 0; i < out.parameter_count; ++i) {
    BindParameter p;
    if (format_count > 0) {
      const size_t at = format_count == 1 ? 0 : size_t(i) * 2;
      p.format = int16_t((uint16_t(formats[at]) << 8) | uint16_t(formats[at + 1]));
    }
    int32_t length = 0;
    if (!next_i32(rest, length)) break;  // past the bytes given: sizes unknown from here
    if (length < -1) return std::nullopt;
    p.size = length;
    if (length > 0) {
      const size_t present = std::min<size_t>(size_t(length), rest.size());
      const size_t head = std::min(present, head_bytes_max);
      p.head = {reinterpret_cast<const char*>(rest.data()), head};
      if (present < size_t(length)) {
        out.parameters.push_back(p);
        break;  // the value runs past the bytes given
      }
      rest = rest.subspan(size_t(length));
    }
    out.parameters.push_back(p);
  }
  return out;
}

void ExtendedTracker::account(const PreparedText* text, int sign) {
  if (text == nullptr) return;
  if (sign > 0) {
    text_bytes_ += text->text.size();
  } else {
    text_bytes_ -= std::min<uint64_t>(text_bytes_, text->text.size());
  }
}

void ExtendedTracker::on_parse(std::string_view name, std::string text, uint64_t full_bytes) {
  if (text_bytes_ + text.size() > text_bytes_max_) text.clear();  // only its size is kept
  auto prepared = std::make_shared<PreparedText>(PreparedText{std::move(text), full_bytes});
  account(prepared.get(), +1);
  pending_.push_back(PendingParse{std::string(name), std::move(prepared), cycles_sent_});
}

std::shared_ptr<const PreparedText> ExtendedTracker::lookup(std::string_view statement) const {
  // A Parse sent before the Bind takes effect first, unless the server refuses it; then the
  // Bind is skipped with it (the rest of the cycle is).
  for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
    if (it->name == statement) return it->text;
  }
  if (auto it = statements_.find(std::string(statement)); it != statements_.end()) return it->second;
  return nullptr;
}

Binding& ExtendedTracker::start_bind(std::string_view portal, std::string_view statement) {
  Binding& b = portal.empty() ? unnamed_ : scratch_;
  scratch_named_ = !portal.empty();
  if (scratch_named_) scratch_name_.assign(portal);
  b.statement_name.assign(statement);
  b.text = lookup(statement);
  b.values.clear();
  b.value_ends.clear();
  b.sizes.clear();
  b.formats.clear();
  b.cycle = cycles_sent_;
  return b;
}

void ExtendedTracker::commit_bind() {
  if (!scratch_named_) return;
  scratch_named_ = false;
  for (auto& [name, binding] : portals_) {
    if (name == scratch_name_) {
      binding = std::move(scratch_);
      scratch_ = Binding();
      return;
    }
  }
  if (portals_.size() >= portals_max_) return;  // not kept: its Executes show the portal only
  portals_.emplace_back(scratch_name_, std::move(scratch_));
  scratch_ = Binding();
}

const Binding* ExtendedTracker::portal(std::string_view name) const {
  if (name.empty()) return unnamed_.text || !unnamed_.sizes.empty() || !unnamed_.statement_name.empty()
                               ? &unnamed_
                               : nullptr;
  for (const auto& [n, binding] : portals_) {
    if (n == name) return &binding;
  }
  return nullptr;
}

void ExtendedTracker::on_close(char kind, std::string_view name) {
  if (kind == Close::kPortal) {
    if (name.empty()) {
      unnamed_ = Binding();
      return;
    }
    std::erase_if(portals_, [&](const auto& p) { return p.first == name; });
    return;
  }
  if (auto it = statements_.find(std::string(name)); it != statements_.end()) {
    account(it->second.get(), -1);
    statements_.erase(it);
  }
}

void ExtendedTracker::on_parse_complete() {
  // The oldest Parse of the cycle being answered; older cycles' leftovers were skipped.
  while (!pending_.empty() && pending_.front().cycle < cycles_done_) {
    account(pending_.front().text.get(), -1);
    pending_.erase(pending_.begin());
  }
  if (pending_.empty()) return;
  PendingParse p = std::move(pending_.front());
  pending_.erase(pending_.begin());
  auto& slot = statements_[p.name];
  account(slot.get(), -1);
  slot = std::move(p.text);
}

uint64_t ExtendedTracker::begin_result() {
  if (result_begun_) return 0;
  result_begun_ = true;
  // Results come in the order of the Executes of the cycle being answered; a Query's cycle has
  // none, and an earlier cycle's are gone (skipped after an error).
  std::erase_if(charges_, [&](const Charge& c) { return c.cycle < cycles_done_; });
  if (charges_.empty() || charges_.front().cycle != cycles_done_) return 0;
  const uint64_t bytes = charges_.front().bytes;
  charges_.erase(charges_.begin());
  return bytes;
}

void ExtendedTracker::on_error() {
  std::erase_if(pending_, [&](const PendingParse& p) {
    if (p.cycle > cycles_done_) return false;
    account(p.text.get(), -1);
    return true;
  });
  std::erase_if(charges_, [&](const Charge& c) { return c.cycle <= cycles_done_; });
  result_begun_ = false;
}

void ExtendedTracker::on_ready(bool idle) {
  on_error();  // nothing of the cycle that ended can still complete
  ++cycles_done_;
  if (!idle) return;
  // Portals end with their transaction; Binds already sent for later cycles stay.
  if (unnamed_.cycle < cycles_done_) unnamed_ = Binding();
  std::erase_if(portals_, [&](const auto& p) { return p.second.cycle < cycles_done_; });
}

}  // namespace gh::pg
